"""Model and user text as HTML: markdown, then a strict bleach allow-list, then Pygments for code.

Nothing a model or a person wrote reaches a page any other way. Raw HTML in the text is not
HTML here: `<div>`, `List<int>` or `a<b` show as the literal text that was typed (markdown's raw
HTML handling is switched off, so the serializer escapes them); the allow-list still cleans what
markdown itself produced; links keep only http(s)/mailto targets; no attribute that a
browser or htmx would act on survives (no on*, style, hx-*, data-*, src). Templates also wrap the
result in `hx-disable`, so even a future slip in the allow-list could not make htmx fire.
"""
from __future__ import annotations

import difflib
import html
import re

import bleach
import markdown
from markdown.extensions import Extension

from engine.lm.code_extraction import close_open_fence
from webapp.core.highlighting import highlight_html

ALLOWED_TAGS = {"p", "br", "hr", "strong", "em", "b", "i", "code", "pre", "blockquote", "ul", "ol", "li",
                "h1", "h2", "h3", "h4", "h5", "h6", "a", "table", "thead", "tbody", "tr", "th", "td", "del"}
ALLOWED_PROTOCOLS = {"http", "https", "mailto"}
_LANGUAGE = re.compile(r"^language-[\w+.-]{1,30}$")
_CODE_BLOCK = re.compile(r'<pre><code(?: class="language-([\w+.-]+)")?>(.*?)</code></pre>', re.S)
MAX_RENDER_CHARS = 100_000


def _attribute_allowed(tag: str, name: str, value: str) -> bool:
    if tag == "a":
        return name in ("href", "title")
    if tag == "code" and name == "class":
        return bool(_LANGUAGE.match(value))
    if tag in ("th", "td") and name == "align":
        return value in ("left", "right", "center")
    return False


_CLEANER = bleach.Cleaner(tags=ALLOWED_TAGS, attributes=_attribute_allowed, protocols=ALLOWED_PROTOCOLS,
                          strip=True, strip_comments=True)


class LiteralHtml(Extension):
    """In a code chat `<` and tags are text people mean to show: escape them, never strip them."""

    def extendMarkdown(self, md):
        md.preprocessors.deregister("html_block")
        md.inlinePatterns.deregister("html")


def _highlight_block(match: re.Match) -> str:
    language, escaped = match.group(1) or "python", match.group(2)
    code = html.unescape(escaped)
    return ('<div class="code-block"><button type="button" class="copy-button" aria-label="Copy code">Copy</button>'
            f"{highlight_html(code, language)}</div>")


def render_markdown(text: str) -> str:
    """Safe HTML for a message; code blocks highlighted and given copy buttons."""
    text = close_open_fence((text or "")[:MAX_RENDER_CHARS])
    converted = markdown.markdown(text, extensions=["fenced_code", "tables", "sane_lists", LiteralHtml()], output_format="html")
    clean = _CLEANER.clean(converted)
    # Links open outside the app and never carry the page as referrer.
    clean = clean.replace("<a ", '<a rel="nofollow noopener noreferrer" target="_blank" ')
    return _CODE_BLOCK.sub(_highlight_block, clean)


def code_diff(before: str, after: str) -> str:
    """A unified diff between two versions of code, highlighted ("" when they are equal)."""
    lines = list(difflib.unified_diff((before or "").splitlines(), (after or "").splitlines(),
                                      "previous turn", "this turn", lineterm="", n=2))
    return highlight_html("\n".join(lines) + "\n", "diff") if lines else ""
