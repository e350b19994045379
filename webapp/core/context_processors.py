"""Navigation for base.html: sections link where installed, and show as 'coming' otherwise."""
from __future__ import annotations

from django.urls import NoReverseMatch, reverse

SECTIONS = (
    ("Puzzles", "puzzles:list"),
    ("Chat", "chat:index"),
    ("Training", "training:runs"),
    ("Traces", "distill:index"),
    ("Benchmarks", "evaluation:index"),
    ("Studies", "studies:index"),
)


def _url_or_none(name: str) -> str | None:
    try:
        return reverse(name)
    except NoReverseMatch:
        return None


def navigation(request) -> dict:
    current = request.path
    items = []
    for label, name in SECTIONS:
        url = _url_or_none(name)
        items.append({"label": label, "url": url, "active": bool(url) and current.startswith(url)})
    return {"nav_items": items}
