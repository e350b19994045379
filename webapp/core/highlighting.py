"""Pygments highlighting for any untrusted source: its output is escaped HTML with CSS classes."""
from __future__ import annotations

from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer, TextLexer, get_lexer_by_name
from pygments.util import ClassNotFound

_FORMATTER = HtmlFormatter(cssclass="highlight", wrapcode=True)


def highlight_html(source: str, language: str = "python") -> str:
    try:
        lexer = PythonLexer() if language in ("python", "py", "") else get_lexer_by_name(language)
    except ClassNotFound:
        lexer = TextLexer()
    return highlight(str(source or ""), lexer, _FORMATTER)
