"""When a session ends while pages are open: say so instead of swapping a login page into them.

A page's background requests (htmx, fetch) get a 401 with one sentence, so the page keeps what
was typed and shows "You were signed out"; a full page load still redirects to the login page.
Signing out closes that session's websockets (close code 4401), in every tab.
"""
from __future__ import annotations

from django.contrib.auth.middleware import LoginRequiredMiddleware
from django.contrib.auth.signals import user_logged_out
from django.dispatch import receiver
from django.http import HttpResponse
from django.shortcuts import resolve_url

from webapp.core.events import close_session_sockets

SIGNED_OUT = "You were signed out — sign in again (what you typed is kept)."


class SignedOutAwareLoginRequired(LoginRequiredMiddleware):
    def handle_no_permission(self, request, view_func):
        if request.headers.get("HX-Request") or request.headers.get("X-Requested-With") == "fetch":
            response = HttpResponse(SIGNED_OUT, status=401, content_type="text/plain; charset=utf-8")
            response["X-Login-Url"] = resolve_url(self.get_login_url(view_func))
            return response
        return super().handle_no_permission(request, view_func)


@receiver(user_logged_out)
def _close_sockets(sender, request, user, **kwargs):
    if request is not None and hasattr(request, "session"):
        close_session_sockets(request.session.session_key)
