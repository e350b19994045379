"""How a refusal (webapp.refusals.Refused) reaches the person: htmx gets the reason as text with the
refusal's status (the page shows it beside the form, nothing typed is lost); a plain request gets the
page it came from again with the reason, or a short page that says why with a link back.

`RefusalMiddleware` answers for any refusal a view did not catch itself, so a service may refuse
from anywhere. Any other exception is left to Django: a logged 500.
"""
from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpResponse
from django.shortcuts import render
from django.urls import reverse

from webapp.refusals import NotAllowed, RateLimited, Refused, TooLarge

Page = Callable[[str, int], HttpResponse]  # (reason, status) -> the page again, with the reason on it


def refusal_response(request, exc: Refused, page: Page | None = None,
                     back: tuple[str, str] = ("home", "Back to the start page")) -> HttpResponse:
    if getattr(request, "htmx", False):
        response = HttpResponse(exc.reason, status=exc.status, content_type="text/plain; charset=utf-8")
    elif page is not None and not isinstance(exc, NotAllowed):
        response = page(exc.reason, exc.status)
    else:
        url_name, label = back
        response = render(request, "refused.html", {"reason": exc.reason, "status": exc.status,
                                                    "back_url": reverse(url_name), "back_label": label},
                          status=exc.status)
    if isinstance(exc, RateLimited):
        response["Retry-After"] = str(exc.retry_after_s)
    return response


class RefusalMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, Refused):
            return refusal_response(request, exception)
        return None


class RequestSizeMiddleware:
    """A body over DATA_UPLOAD_MAX_MEMORY_SIZE gets one clear sentence (413) before the CSRF check
    reads it, instead of Django's bare 400 and a traceback in the log."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if limit and length > limit:  # the site takes no file uploads: any body this big is refused
            reason = (f"That is too much text to send at once ({length / 1e6:.1f} MB; the limit is "
                      f"{limit / 1e6:.1f} MB). Nothing was saved.")
            return refusal_response(request, TooLarge(reason))
        return self.get_response(request)
