"""Code highlighting for templates."""
from __future__ import annotations

from django import template
from django.utils.safestring import mark_safe

from webapp.core.highlighting import highlight_html

register = template.Library()


@register.filter(name="highlight")
def highlight_code(source, language: str = "python") -> str:
    """`{{ code|highlight:"python" }}`: escaped, highlighted HTML for any untrusted source."""
    return mark_safe(highlight_html(source, language))  # noqa: S308 - Pygments escapes
