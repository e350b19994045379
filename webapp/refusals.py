"""Refusals: what a service raises when it will not do what a person asked, and why.

A `Refused` carries the HTTP status a page answers with and a message meant for the person who
asked. Services raise only these for anything a user can cause; views turn them (and only them)
into a page or an htmx fragment, so an unexpected `ValueError` deep inside is a logged 500, never
a 400 whose text leaks an internal detail. Every app may import this module (it is below them all).
"""
from __future__ import annotations

from django.core.exceptions import PermissionDenied

from engine.config import ConfigError


class Refused(Exception):
    status = 400

    def __init__(self, message: str = "", fields: dict[str, str] | None = None):
        super().__init__(message)
        self.fields = dict(fields or {})  # form field -> message, when the refusal is about a form's values

    @property
    def reason(self) -> str:
        """The message, capitalised, for a page."""
        text = str(self) or "The request was refused."
        return text[:1].upper() + text[1:]


class Invalid(Refused, ValueError):
    """Bad input: the form again, with what was typed."""

    status = 400


class NotAllowed(Refused, PermissionDenied):
    """The person's role does not allow it."""

    status = 403


class Conflict(Refused):
    """Not now: something else is running or the object is in the wrong state."""

    status = 409


class TooLarge(Refused):
    """A request body over the site's limit (refused before anything reads it)."""

    status = 413


class RateLimited(Refused):
    status = 429

    def __init__(self, message: str = "", retry_after_s: int = 60):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Unavailable(Refused):
    """A part the request needs is down; nothing was saved."""

    status = 503


def config_from(config_class, values: dict):
    """`config_class.from_dict(values)` (an engine StrictConfig); its ConfigError becomes Invalid with
    the same field -> message errors, for the form to show beside each field."""
    try:
        return config_class.from_dict(values)
    except ConfigError as exc:
        raise Invalid(str(exc), fields=exc.errors) from None


def form_numbers(post, kinds: dict[str, type]) -> dict:
    """The numbers a run form filled in, by name -> int or float (an empty field is left out, so the
    settings' default applies); a field that is not a number is refused by its name."""
    values = {}
    for name, kind in kinds.items():
        raw = (post.get(name) or "").strip()
        if raw:
            try:
                values[name] = kind(raw)
            except ValueError:
                raise Invalid(f"{name.replace('_', ' ')} must be a number", fields={name: "must be a number"}) from None
    return values
