"""The pages every kind of background run gets: its page, the live panel htmx polls while it runs,
and cancel / resume. A kind supplies its model, templates, service functions and the context only
it has; refusals from its services (webapp.refusals) come back as the page or an htmx text."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from webapp.core.refusal_responses import refusal_response
from webapp.refusals import Refused

Context = Callable[[object, object], dict]  # (request, run) -> the kind's own context


@dataclass(frozen=True)
class RunPages:
    model: type
    app: str  # URL namespace: <app>:run, run-progress, run-cancel, run-resume
    page_template: str
    panel_template: str
    title: str  # "Training round {pk}"
    back: tuple[str, str]  # where a refusal page links back to: (URL name, label)
    may_act: Callable[[object], bool]  # (user) -> may cancel and resume
    cancel_run: Callable  # (user, run) -> None; raises Refused
    resume_run: Callable  # (user, run) -> run; raises Refused
    panel_context: Context = lambda request, run: {}
    page_context: Context = lambda request, run: {}
    after_resume: Callable = lambda run: None  # e.g. queue its next step
    stalled_hint: str = ""
    related: tuple[str, ...] = field(default=("created_by",))

    def get(self, run_id: int):
        return get_object_or_404(self.model.objects.select_related(*self.related), pk=run_id)

    def context(self, request, run) -> dict:
        may_act = self.may_act(request.user)
        return {"run": run, "percent": run.percent, "polling": run.is_active, "stalled": run.is_stalled(),
                "stalled_after_s": int(run.STALLED_AFTER_S), "stalled_hint": self.stalled_hint,
                "timings": run.stage_timings(),
                "can_cancel": may_act and run.is_active and not run.cancel_requested,
                "can_resume": may_act and run.resumable,
                "urls": {name: reverse(f"{self.app}:run-{name}", args=[run.pk])
                         for name in ("progress", "cancel", "resume")},
                **self.panel_context(request, run)}

    def render_page(self, request, run, status: int = 200, error: str = "") -> HttpResponse:
        context = {**self.context(request, run), **self.page_context(request, run), "action_error": error,
                   "title": self.title.format(pk=run.pk), "panel_template": self.panel_template}
        return render(request, self.page_template, context, status=status)

    def render_panel(self, request, run) -> HttpResponse:
        return render(request, self.panel_template, self.context(request, run))

    def _action(self, request, run_id: int, act) -> HttpResponse:
        run = self.get(run_id)
        try:
            act(request.user, run)
        except Refused as exc:
            return refusal_response(request, exc, lambda text, status: self.render_page(request, self.get(run_id),
                                                                                         status, text), self.back)
        if request.htmx:
            return self.render_panel(request, self.get(run_id))
        return redirect(f"{self.app}:run", run_id)

    def _resume(self, user, run) -> None:
        self.after_resume(self.resume_run(user, run))

    def urlpatterns(self, prefix: str = "runs/") -> list:
        """The four routes, for the kind's urls.py (names: run, run-progress, run-cancel, run-resume)."""
        views = self.views()
        return [path(f"{prefix}<int:run_id>/", views["run"], name="run"),
                path(f"{prefix}<int:run_id>/progress/", views["run-progress"], name="run-progress"),
                path(f"{prefix}<int:run_id>/cancel/", views["run-cancel"], name="run-cancel"),
                path(f"{prefix}<int:run_id>/resume/", views["run-resume"], name="run-resume")]

    def views(self) -> dict[str, Callable]:
        @require_GET
        def page(request, run_id: int):
            return self.render_page(request, self.get(run_id))

        @require_GET
        @never_cache
        def progress(request, run_id: int):
            """The live part of the run page; htmx polls it every 2 s while the run is active."""
            return self.render_panel(request, self.get(run_id))

        @require_POST
        def cancel(request, run_id: int):
            return self._action(request, run_id, self.cancel_run)

        @require_POST
        def resume(request, run_id: int):
            return self._action(request, run_id, self._resume)

        return {"run": page, "run-progress": progress, "run-cancel": cancel, "run-resume": resume}
