"""A Content-Security-Policy on every page: even if sanitising ever missed something, the browser
runs no inline or foreign script, loads no foreign resource and connects only to this site.
AUTODIDACT_CSP replaces the policy ("" turns it off)."""
from __future__ import annotations

from django.conf import settings

DEFAULT_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
                  "connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'")


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        self.policy = getattr(settings, "AUTODIDACT_CSP", DEFAULT_POLICY)

    def __call__(self, request):
        response = self.get_response(request)
        if self.policy and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = self.policy
        return response
