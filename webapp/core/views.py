"""Home page and health endpoints (thin: the checks live in webapp.core.health)."""
from __future__ import annotations

from django.contrib.auth.decorators import login_not_required
from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from webapp.accounts.roles import roles_of
from webapp.core.health import run_checks

EXAMPLE_PUZZLE = '''def sat(s: str, n: int = 7):
    """A palindrome of length n made of a and b."""
    return len(s) == n and s == s[::-1] and set(s) <= {"a", "b"}


def sol(n: int = 7):
    return "a" * n
'''


@require_GET
def home(request):
    return render(
        request,
        "core/home.html",
        {"example_puzzle": EXAMPLE_PUZZLE, "roles": roles_of(request.user)},
    )


@require_GET
@never_cache
def status_panel(request):
    """The system status card, refreshed in place by htmx."""
    return render(request, "core/_status_panel.html", {"health": run_checks()})


@login_not_required
@require_GET
@never_cache
def healthz(request):
    report = run_checks()
    return JsonResponse(report, status=200 if report["status"] == "ok" else 503)
