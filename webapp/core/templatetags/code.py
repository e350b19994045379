"""Code highlighting for templates: Pygments output (already HTML-escaped) with CSS classes."""
from __future__ import annotations

from django import template
from django.utils.safestring import mark_safe
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer, TextLexer, get_lexer_by_name
from pygments.util import ClassNotFound

register = template.Library()
_FORMATTER = HtmlFormatter(cssclass="highlight", wrapcode=True)


@register.filter(name="highlight")
def highlight_code(source, language: str = "python") -> str:
    """`{{ code|highlight:"python" }}`: escaped, highlighted HTML for any untrusted source."""
    try:
        lexer = get_lexer_by_name(language) if language != "python" else PythonLexer()
    except ClassNotFound:
        lexer = TextLexer()
    return mark_safe(highlight(str(source or ""), lexer, _FORMATTER))  # noqa: S308 - Pygments escapes
