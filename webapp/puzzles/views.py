"""Puzzle pages: the list (filters, keyboard review), a puzzle's page (solutions, attempts, reviews,
edit, solve it yourself, discuss with the model) and self-play generation runs.

The views are thin: listing, reviews, solving and generation decide; these only read the request,
call them and render. A refusal says why: PermissionDenied is a 403 with its reason, a bad input
is a 400 (text for htmx, the page again with the error and the typed text for a plain post).
"""
from __future__ import annotations

import math
import re

from celery.exceptions import TimeoutError as CeleryTimeoutError
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import Prefetch
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.utils.http import urlencode
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from engine.selfplay.pipeline import STAGES, SelfPlayConfig
from engine.selfplay.puzzle_code import extra_parameters
from engine.selfplay.solving_prompts import STYLES
from webapp.accounts.roles import is_reviewer, is_trainer
from webapp.chat import services, turns
from webapp.chat.rate_limits import RateLimited
from webapp.puzzles import generation, reviews, solving
from webapp.puzzles.generation import RunRefused
from webapp.puzzles.listing import SORTS, ListFilters, page_of
from webapp.puzzles.models import Attempt, GenerationRun, Puzzle, Review

ATTEMPTS_SHOWN = 100
REVIEWS_SHOWN = 200
VERSIONS_SHOWN = 50
RUNS_SHOWN = 50
SORT_LABELS = {"new": "Newest first", "old": "Oldest first", "hard": "Hardest first (lowest solve rate)",
               "easy": "Easiest first", "attempts": "Most model attempts", "name": "Name"}
REVIEW_FILTERS = (("", "Any"), ("any", "Reviewed"), ("none", "Not reviewed"), ("approve", "Approved"),
                  ("reject", "Rejected"), ("flag", "Flagged"))
TEST_SPLIT_REFUSAL = ("test-split puzzles cannot be discussed with the model: a repair the sandbox verifies in "
                      "the chat becomes training data, and the test split is kept for evaluation only")
NO_VERIFY_WORKER = (f"No verify worker answered within {solving.WAIT_S:.0f} s, so the solution was not checked. "
                    "Try again once the workers are running (see Health).")


# --- refusals ------------------------------------------------------------------------------------
def _status_of(exc: Exception) -> int:
    if isinstance(exc, PermissionDenied):
        return 403
    if isinstance(exc, (CeleryTimeoutError, TimeoutError)):
        return 503
    return {services.Busy: 409, RateLimited: 429, turns.Unavailable: 503}.get(type(exc), 400)


def _reason(exc: Exception) -> str:
    if isinstance(exc, (CeleryTimeoutError, TimeoutError)):
        return NO_VERIFY_WORKER
    text = str(exc) or "The request was refused."
    return text[:1].upper() + text[1:]


def _refusal(request, exc: Exception, page=None) -> HttpResponse:
    """htmx: the reason as text (the page shows it next to the form). A plain post: `page(error)`
    re-renders the page it came from, with what was typed; otherwise a short page with the reason."""
    status, text = _status_of(exc), _reason(exc)
    if request.htmx:
        response = HttpResponse(text, status=status, content_type="text/plain; charset=utf-8")
        if isinstance(exc, RateLimited):
            response["Retry-After"] = str(exc.retry_after_s)
        return response
    if page is not None:
        return page(text, status)
    return render(request, "refused.html", {"reason": text, "status": status, "back_url": reverse("puzzles:list"),
                                            "back_label": "Back to the puzzles"}, status=status)


CHAT_REFUSALS = (ValueError, services.Busy, RateLimited, turns.Unavailable)


# --- the list ------------------------------------------------------------------------------------
@require_GET
def puzzle_list(request):
    filters = ListFilters.from_query(request.GET)
    page = page_of(filters, request.GET.get("page"))
    rows = list(page.object_list)
    for puzzle in rows:
        puzzle.first_line = puzzle.sat.strip().split("\n", 1)[0]
    query = urlencode(filters.as_query())
    context = {
        "filters": filters, "page": page, "rows": rows, "total": page.paginator.count,
        "page_prefix": f"{query}&" if query else "",
        "filtered": bool(filters.as_query().keys() - {"sort"}),
        "reviewer": is_reviewer(request.user),
        "sources": Puzzle.Source.choices, "splits": Puzzle.Split.choices, "statuses": Puzzle.Status.choices,
        "review_filters": REVIEW_FILTERS, "sorts": [(key, SORT_LABELS.get(key, key)) for key in SORTS],
    }
    partial = request.htmx and not request.htmx.history_restore_request
    response = render(request, "puzzles/_results.html" if partial else "puzzles/list.html", context)
    if partial:  # the address bar shows the filters in effect, without the form's empty fields
        shown = {**filters.as_query(), **({"page": page.number} if page.number > 1 else {})}
        response["HX-Push-Url"] = request.path + (f"?{urlencode(shown)}" if shown else "")
    patch_vary_headers(response, ("HX-Request",))
    return response


# --- a puzzle's page -----------------------------------------------------------------------------
def _solution_header(sat: str) -> str:
    try:
        parameters = extra_parameters(sat)
    except Exception:  # not a well-formed sat (an edit may be waiting): a bare header still helps
        parameters = ""
    return f"def sol({parameters}):\n    return "


def _versions(puzzle: Puzzle) -> tuple[list[Puzzle], Puzzle | None]:
    """Every version of this puzzle, oldest first, and the current one."""
    older, cursor = [], puzzle
    while cursor.previous_id and len(older) < VERSIONS_SHOWN:
        cursor = Puzzle.objects.only("id", "version", "is_current", "previous_id").get(pk=cursor.previous_id)
        older.append(cursor)
    newer, cursor = [], puzzle
    while len(newer) < VERSIONS_SHOWN:
        cursor = Puzzle.objects.only("id", "version", "is_current", "previous_id").filter(previous=cursor).first()
        if cursor is None:
            break
        newer.append(cursor)
    versions = [*reversed(older), puzzle, *newer]
    current = next((v for v in reversed(versions) if v.is_current), None)
    return versions, current


def _flat(values: dict, prefix: str = "") -> list[tuple[str, object]]:
    rows = []
    for key, value in (values or {}).items():
        if isinstance(value, dict):
            rows += _flat(value, f"{prefix}{key} ")
        else:
            rows.append((f"{prefix}{key}".replace("_", " "), value))
    return rows


def _mark_flags(attempts) -> None:
    for attempt in attempts:
        verdicts = [review.verdict for review in attempt.reviews.all()]
        attempt.flagged = Review.Verdict.FLAG in verdicts
        attempt.rejected = Review.Verdict.REJECT in verdicts


def _attempts_context(puzzle: Puzzle) -> dict:
    attempts = list(puzzle.attempts.select_related("user")
                    .prefetch_related(Prefetch("reviews", queryset=Review.objects.only("id", "attempt_id", "verdict")))
                    [:ATTEMPTS_SHOWN])
    _mark_flags(attempts)
    count = len(attempts) if len(attempts) < ATTEMPTS_SHOWN else puzzle.attempts.count()
    return {"attempts": attempts, "attempt_count": count,
            "solutions": list(puzzle.attempts.filter(kept=True, status="passed"))}


def _review_context(request, puzzle: Puzzle) -> dict:
    return {"puzzle": puzzle, "reviewer": is_reviewer(request.user),
            "review_list": puzzle.reviews.select_related("user")[:REVIEWS_SHOWN]}


def _puzzle_context(request, puzzle: Puzzle, **extra) -> dict:
    versions, current = _versions(puzzle)
    context = {
        **_review_context(request, puzzle), **_attempts_context(puzzle),
        "versions": versions, "current": current,
        "sampling": _flat(puzzle.sampling),
        "solve_code": _solution_header(puzzle.sat),
        "edit_sat": puzzle.sat, "edit_description": puzzle.description,
        "test_split": puzzle.split == Puzzle.Split.TEST,
    }
    context.update(extra)
    return context


def _puzzle_page(request, puzzle: Puzzle, status: int = 200, **extra) -> HttpResponse:
    return render(request, "puzzles/detail.html", _puzzle_context(request, puzzle, **extra), status=status)


def _puzzle(puzzle_id: int) -> Puzzle:
    return get_object_or_404(Puzzle.objects.select_related("generation_run"), pk=puzzle_id)


@require_GET
def puzzle_detail(request, puzzle_id: int):
    return _puzzle_page(request, _puzzle(puzzle_id))


@require_POST
def review(request, puzzle_id: int):
    """Approve, reject or flag the puzzle (or, with `attempt`, one of its attempts). htmx gets the
    review panel again (`view=cell`: the list's review cell); a plain post goes back to the page."""
    puzzle = _puzzle(puzzle_id)
    attempt = None
    attempt_id = request.POST.get("attempt", "")
    if attempt_id:
        if not attempt_id.isdigit():
            return _refusal(request, ValueError("no such attempt"))
        attempt = get_object_or_404(Attempt, pk=int(attempt_id), puzzle=puzzle)
    try:
        reviews.add_review(request.user, puzzle, request.POST.get("verdict", ""), request.POST.get("comment", ""),
                           attempt)
    except (PermissionDenied, ValueError) as exc:
        return _refusal(request, exc)
    puzzle.refresh_from_db()
    if request.POST.get("view") == "cell":
        return render(request, "puzzles/_review_cell.html", {"p": puzzle})
    if not request.htmx:
        messages.success(request, "Your review is saved.")
        return redirect("puzzles:detail", puzzle.pk)
    context = _review_context(request, puzzle)
    if attempt is not None:  # the attempt (and the kept solutions) change too
        attempts = _attempts_context(puzzle)
        context.update(attempts, oob=True, attempt=next((a for a in attempts["attempts"] if a.pk == attempt.pk), None))
    return render(request, "puzzles/_review_response.html", context)


@require_POST
def edit(request, puzzle_id: int):
    puzzle = _puzzle(puzzle_id)
    sat, description = request.POST.get("sat", ""), request.POST.get("description")
    try:
        new = reviews.edit_puzzle(request.user, puzzle, sat, description)
    except PermissionDenied as exc:
        return _refusal(request, exc)
    except ValueError as exc:
        return _refusal(request, exc, page=lambda text, status: _puzzle_page(
            request, puzzle, status, edit_error=text, edit_open=True, edit_sat=sat,
            edit_description=puzzle.description if description is None else description))
    messages.success(request, f"Saved as version {new.version}. Its solutions are being verified again against "
                              "the new puzzle; its status shows the result.")
    return redirect("puzzles:detail", new.pk)


@require_POST
def solve(request, puzzle_id: int):
    """Check a person's solution in the sandbox (on a verify worker); the verdict comes back."""
    puzzle = _puzzle(puzzle_id)
    code = request.POST.get("code", "")
    try:
        attempt = solving.solve_yourself(request.user, puzzle, code)
    except (ValueError, CeleryTimeoutError, TimeoutError) as exc:
        return _refusal(request, exc, page=lambda text, status: _puzzle_page(
            request, puzzle, status, solve_error=text, solve_code=code))
    puzzle.refresh_from_db()
    if request.htmx:
        context = {**_attempts_context(puzzle), "puzzle": puzzle, "solve_attempt": attempt, "oob": True,
                   "reviewer": is_reviewer(request.user)}
        return render(request, "puzzles/_solve_response.html", context)
    return _puzzle_page(request, puzzle, solve_attempt=attempt, solve_code=code)


@require_POST
def discuss(request, puzzle_id: int):
    """Open a chat about this puzzle (never a test-split one) and go there."""
    puzzle = _puzzle(puzzle_id)

    def page(text, status):
        return _puzzle_page(request, puzzle, status, discuss_error=text)

    if puzzle.split == Puzzle.Split.TEST:
        return _refusal(request, ValueError(TEST_SPLIT_REFUSAL), page=page)
    try:
        conversation, _ = turns.open_conversation(request.user, "puzzle", sat=puzzle.sat,
                                                  title=f"Puzzle: {puzzle}"[:200])
    except CHAT_REFUSALS as exc:
        return _refusal(request, exc, page=page)
    return redirect("chat:conversation", conversation.pk)


# --- generation runs -----------------------------------------------------------------------------
RUN_FIELDS = (  # form name, label, type
    ("batches", "Budget (batches)", int),
    ("puzzles_per_prompt", "Puzzles per prompt", int),
    ("attempts", "Attempts per puzzle", int),
    ("generation_temperature", "Generation temperature", float),
    ("solving_temperature", "Solving temperature", float),
    ("generation_tokens", "Generation max tokens", int),
    ("solving_tokens", "Solving max tokens", int),
    ("context_tokens", "Generation context tokens", int),
    ("style", "Solving prompt style", str),
    ("seed", "Seed", int),
)
RUN_HELP = {
    "batches": "generation prompts; each makes one batch",
    "puzzles_per_prompt": "completions sampled from each generation prompt",
    "attempts": "solving samples for each puzzle that passes the filters",
    "context_tokens": "the generation prompt's examples fill this",
    "style": "how puzzles are put to the model to solve",
}
LABELS = {name: label for name, label, _ in RUN_FIELDS}
COUNT_ROWS = (  # stage, key, label
    ("generate", "generated", "Generated"),
    ("filter", "rejected_parses", "Rejected: does not parse"),
    ("filter", "rejected_signature", "Rejected: not a P3 signature"),
    ("filter", "rejected_answer_used", "Rejected: ignores its answer"),
    ("filter", "rejected_duplicate", "Rejected: duplicate"),
    ("filter", "rejected_sandbox", "Rejected: fails in the sandbox"),
    ("filter", "rejected_trivial", "Rejected: trivial (a small answer solves it)"),
    ("filter", "accepted", "Accepted"),
    ("solve", "attempts", "Solving attempts"),
    ("verify", "attempts_passed", "Attempts passed"),
    ("verify", "solved", "Puzzles solved"),
    ("verify", "pairs_kept", "Training pairs kept"),
)


def _run_settings(post) -> dict:
    """The form's values, typed; ValueError names the field that is wrong."""
    values = {}
    for name, label, kind in RUN_FIELDS:
        raw = post.get(name, "").strip()
        if not raw:
            raise ValueError(f"{label} is empty")
        try:
            values[name] = kind(raw)
        except ValueError:
            raise ValueError(f"{label} must be {'a whole number' if kind is int else 'a number'}") from None
        if kind is float and not math.isfinite(values[name]):
            raise ValueError(f"{label} must be a number")
    return values


def _readable(text: str) -> str:
    """An engine message that starts with a field's name ("batches must be at least 1"), with the
    name as the form labels it."""
    name = re.match(r"[a-z_]+", text)
    if name and name.group() in LABELS:
        return LABELS[name.group()] + text[name.end():]
    return text


def _run_form(values: dict | None = None) -> list[dict]:
    defaults = SelfPlayConfig().as_dict()
    values = values or {}
    return [{"name": name, "label": label, "help": RUN_HELP.get(name, ""), "kind": kind.__name__,
             "value": values.get(name, defaults.get(name, "")),
             "step": "0.05" if kind is float else "1"} for name, label, kind in RUN_FIELDS]


def _generate_page(request, status: int = 200, error: str = "", values: dict | None = None) -> HttpResponse:
    runs = list(GenerationRun.objects.select_related("created_by")[:RUNS_SHOWN])
    for run in runs:
        run.percent = round(run.progress * 100)
    context = {"trainer": is_trainer(request.user), "fields": _run_form(values), "styles": STYLES,
               "runs": runs, "error": error}
    return render(request, "puzzles/generate.html", context, status=status)


@require_http_methods(["GET", "POST"])
def generate(request):
    if request.method == "GET":
        return _generate_page(request)
    if not is_trainer(request.user):  # before the settings: a refusal says who may, not what is wrong
        return _refusal(request, PermissionDenied("only trainers can start generation runs"))
    values = {name: request.POST.get(name, "") for name, _, _ in RUN_FIELDS}
    try:
        run = generation.start_run(request.user, _run_settings(request.POST))
    except PermissionDenied as exc:
        return _refusal(request, exc)
    except (ValueError, RunRefused) as exc:
        return _refusal(request, ValueError(_readable(str(exc))),
                        page=lambda text, status: _generate_page(request, status, text, values))
    generation.enqueue(run)
    return redirect("puzzles:run", run.pk)


def _run_context(request, run: GenerationRun) -> dict:
    stalled = generation.is_stalled(run)
    trainer = is_trainer(request.user)
    counts = run.counts or {}
    timings = []
    for stage in STAGES:
        timing = (run.timings or {}).get(stage) or {}
        seconds, tokens = float(timing.get("seconds", 0.0)), int(timing.get("tokens", 0))
        timings.append({"stage": stage, "seconds": seconds, "tokens": tokens, "items": int(timing.get("items", 0)),
                        "rate": tokens / seconds if seconds and tokens else None, "ran": bool(timing)})
    return {
        "run": run, "percent": round(run.progress * 100), "stalled": stalled, "polling": run.is_active,
        "current_batch": min(run.batches_done + 1, run.batches) if run.is_active else None,
        "count_rows": [{"stage": stage, "key": key, "label": label, "value": counts.get(key, 0)}
                       for stage, key, label in COUNT_ROWS],
        "timings": timings,
        "can_cancel": trainer and run.is_active and run.status != GenerationRun.Status.CANCELLING,
        "can_resume": trainer and generation.resumable(run),
        "trainer": trainer,
    }


def _run(run_id: int) -> GenerationRun:
    return get_object_or_404(GenerationRun.objects.select_related("created_by"), pk=run_id)


def _run_page(request, run: GenerationRun, status: int = 200, error: str = "") -> HttpResponse:
    settings_rows = [(LABELS.get(key, key.replace("_", " ")), value) for key, value in (run.config or {}).items()]
    context = {**_run_context(request, run), "settings_rows": settings_rows, "action_error": error,
               "puzzle_count": Puzzle.objects.filter(generation_run=run).count()}
    return render(request, "puzzles/run.html", context, status=status)


@require_GET
def run_page(request, run_id: int):
    return _run_page(request, _run(run_id))


@require_GET
@never_cache
def run_progress(request, run_id: int):
    """The live part of the run page; htmx polls it every 2 s while the run is active."""
    return render(request, "puzzles/_run_panel.html", _run_context(request, _run(run_id)))


def _after_run_action(request, run: GenerationRun) -> HttpResponse:
    if request.htmx:
        run.refresh_from_db()
        return render(request, "puzzles/_run_panel.html", _run_context(request, run))
    return redirect("puzzles:run", run.pk)


@require_POST
def cancel_run(request, run_id: int):
    run = _run(run_id)
    if not run.is_active and is_trainer(request.user):
        return _refusal(request, ValueError(f"the run is already {run.status}"),
                        page=lambda text, status: _run_page(request, run, status, text))
    try:
        generation.cancel_run(request.user, run)
    except PermissionDenied as exc:
        return _refusal(request, exc)
    return _after_run_action(request, run)


@require_POST
def resume_run(request, run_id: int):
    run = _run(run_id)
    try:
        run = generation.resume_run(request.user, run)
    except PermissionDenied as exc:
        return _refusal(request, exc)
    except RunRefused as exc:
        return _refusal(request, exc, page=lambda text, status: _run_page(request, run, status, text))
    generation.enqueue(run)
    return _after_run_action(request, run)
