"""Puzzle pages: the list (filters, keyboard review), a puzzle's page (solutions, attempts, reviews,
edit, solve it yourself, discuss with the model) and self-play generation runs.

The views are thin: listing, reviews, solving and generation_runs decide and refuse with
webapp.refusals; these only read the request, call them and render. A refusal says why: a 403 with
its reason, a bad input a 400 (text for htmx, the page again with the error and the typed text for
a plain post), a busy or missing part a 409 or 503.
"""
from __future__ import annotations

from django.contrib import messages
from django.db.models import Count, Prefetch, Q
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.cache import patch_vary_headers
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from engine.selfplay.generation_prompt import FORMS
from engine.selfplay.pipeline import WRITERS, SelfPlayConfig
from engine.selfplay.puzzle_code import extra_parameters
from engine.selfplay.solving_prompts import STYLES
from webapp.accounts.roles import is_reviewer, is_trainer
from webapp.chat import user_turns
from webapp.core.refusal_responses import refusal_response
from webapp.core.run_views import RunPages
from webapp.core.settings_forms import Setting, SettingsForm
from webapp.puzzles import generation_runs, review_queue, reviews, solving
from webapp.puzzles.listing import SORTS, ListFilters, page_of
from webapp.puzzles.models import Attempt, GenerationRun, Puzzle, Review
from webapp.refusals import Invalid, NotAllowed, Refused

ATTEMPTS_SHOWN = 100
REVIEWS_SHOWN = 200
VERSIONS_SHOWN = 50
RUNS_SHOWN = 50
SORT_LABELS = {"new": "Newest first", "old": "Oldest first", "hard": "Hardest first (lowest solve rate)",
               "easy": "Easiest first", "attempts": "Most model attempts", "name": "Name"}
REVIEW_FILTERS = (("", "Any"), ("any", "Reviewed"), ("none", "Not reviewed"), ("approve", "Approved"),
                  ("reject", "Rejected"), ("flag", "Flagged"))
TEST_SPLIT_REFUSAL = ("test- and validation-split puzzles cannot be discussed with the model: a repair the sandbox "
                      "verifies in the chat becomes training data, and those splits are kept for evaluation only")
BACK = ("puzzles:list", "Back to the puzzles")


def _refusal(request, exc: Refused, page=None) -> HttpResponse:
    """htmx: the reason as text (the page shows it next to the form). A plain post: `page(error, status)`
    re-renders the page it came from, with what was typed; otherwise a short page with the reason."""
    return refusal_response(request, exc, page, BACK)


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
    verdicts = review_queue.latest_verdicts(puzzle)
    return {"puzzle": puzzle, "reviewer": is_reviewer(request.user),
            "review_list": puzzle.reviews.select_related("user")[:REVIEWS_SHOWN],
            "reviewer_verdicts": sorted(verdicts.items()), "agreement": review_queue.agreement_of(verdicts)}


def _puzzle_context(request, puzzle: Puzzle, **extra) -> dict:
    versions, current = _versions(puzzle)
    context = {
        **_review_context(request, puzzle), **_attempts_context(puzzle),
        "versions": versions, "current": current,
        "sampling": _flat(puzzle.sampling),
        "solve_code": _solution_header(puzzle.sat),
        "edit_sat": puzzle.sat, "edit_description": puzzle.description,
        "test_split": puzzle.split in Puzzle.HELD_OUT,
        "solve_rates": _solve_rates(puzzle),
    }
    context.update(extra)
    return context


def _solve_rates(puzzle: Puzzle) -> list[dict]:
    """The model's attempts at this puzzle per version that made them (oldest version first): which
    versions solve it, so a reviewer sees whether what it taught stuck. A solution written with the
    puzzle is the writer's, not an attempt."""
    return list(Attempt.objects.filter(puzzle=puzzle, origin=Attempt.Origin.MODEL).exclude(style="written")
                .values("model_version__name", "model_name")
                .annotate(total=Count("id"), passed=Count("id", filter=Q(status="passed")))
                .order_by("model_version__id", "model_name"))


def _puzzle_page(request, puzzle: Puzzle, status: int = 200, **extra) -> HttpResponse:
    return render(request, "puzzles/detail.html", _puzzle_context(request, puzzle, **extra), status=status)


def _puzzle(puzzle_id: int) -> Puzzle:
    return get_object_or_404(Puzzle.objects.select_related("generation_run", "model_version"), pk=puzzle_id)


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
            return _refusal(request, Invalid("no such attempt"))
        attempt = get_object_or_404(Attempt, pk=int(attempt_id), puzzle=puzzle)
    try:
        reviews.add_review(request.user, puzzle, request.POST.get("verdict", ""), request.POST.get("comment", ""),
                           attempt)
    except Refused as exc:
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
    except Refused as exc:
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
    except Refused as exc:
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

    if puzzle.split in Puzzle.HELD_OUT:
        return _refusal(request, Invalid(TEST_SPLIT_REFUSAL), page=page)
    try:
        conversation, _ = user_turns.open_conversation(request.user, "puzzle", sat=puzzle.sat,
                                                       title=f"Puzzle: {puzzle}"[:200])
    except Refused as exc:
        return _refusal(request, exc, page=page)
    return redirect("chat:conversation", conversation.pk)


# --- generation runs -----------------------------------------------------------------------------
class RunForm(SettingsForm):
    SETTINGS = (
        Setting("batches", "Budget (batches)", int, "generation prompts; each makes one batch"),
        Setting("puzzles_per_prompt", "Puzzles per prompt", int, "completions sampled from each generation prompt"),
        Setting("attempts", "Attempts per puzzle", int, "solving samples for each puzzle that passes the filters"),
        Setting("generation_temperature", "Generation temperature", float),
        Setting("solving_temperature", "Solving temperature", float),
        Setting("generation_tokens", "Generation max tokens", int),
        Setting("solving_tokens", "Solving max tokens", int),
        Setting("context_tokens", "Generation context tokens", int, "the generation prompt's examples fill this"),
        Setting("form", "Puzzle-writing prompt", str, "completion: the paper's; pair: a puzzle and its solution "
                "together; chat: an instruction with examples", optional=True),
        Setting("writer", "Puzzle writer", str, "self: the model being trained; teacher: the teacher endpoint "
                "(AUTODIDACT_TEACHER_URL, or the packaged Qwen2.5-Coder served locally)", optional=True),
        Setting("style", "Solving prompt style", str, "how puzzles are put to the model to solve"),
        Setting("top_k", "Top-k", int, "sample from the k most likely tokens (0: no limit; the paper: 50)", low=0,
                optional=True),
        Setting("top_p", "Top-p", float, "nucleus sampling (1: off)", low=0.01, high=1.0, optional=True),
        Setting("seed", "Seed", int),
    )


LABELS = {setting.name: setting.label for setting in RunForm.SETTINGS}
COUNT_ROWS = (  # stage, key, label
    ("generate", "generated", "Generated"),
    ("generate", "writer_retries", "Writer requests retried (timeout, 429, 5xx, bad JSON)"),
    ("generate", "writer_errors", "Writer requests that failed (after retries)"),
    ("filter", "rejected_parses", "Rejected: does not parse"),
    ("filter", "parse_truncated", "… cut at the token limit"),
    ("filter", "parse_indentation", "… mis-indented"),
    ("filter", "parse_prose", "… prose, not code"),
    ("filter", "parse_syntax", "… another syntax error"),
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


def _generate_page(request, status: int = 200, error: str = "", values: dict | None = None) -> HttpResponse:
    runs = list(GenerationRun.objects.select_related("created_by")[:RUNS_SHOWN])
    fields = RunForm().rows({**SelfPlayConfig().as_dict(), **(values or {})})
    for field in fields:
        field["choices"] = {"style": STYLES, "form": FORMS, "writer": WRITERS}.get(field["name"])
    context = {"trainer": is_trainer(request.user), "fields": fields, "runs": runs, "error": error}
    return render(request, "puzzles/generate.html", context, status=status)


@require_http_methods(["GET", "POST"])
def generate(request):
    if request.method == "GET":
        return _generate_page(request)
    if not is_trainer(request.user):  # before the settings: a refusal says who may, not what is wrong
        return _refusal(request, NotAllowed("only trainers can start generation runs"))
    form = RunForm(request.POST)
    try:
        if not form.is_valid():
            raise Invalid(form.error_text())
        run = generation_runs.start_run(request.user, form.settings())
    except Refused as exc:
        if isinstance(exc, Invalid) and exc.fields:
            form.refused_by(exc)
            exc = Invalid(form.error_text())
        return _refusal(request, exc, page=lambda text, status: _generate_page(request, status, text, form.typed()))
    generation_runs.enqueue(run)
    return redirect("puzzles:run", run.pk)


def _panel_context(request, run: GenerationRun) -> dict:
    counts = {**(run.counts or {}), "writer_retries": ((run.timings or {}).get("generate") or {}).get("retries", 0)}
    return {
        "current_batch": min(run.batches_done + 1, run.batches) if run.is_active else None,
        "count_rows": [{"stage": stage, "key": key, "label": label, "value": counts.get(key, 0)}
                       for stage, key, label in COUNT_ROWS],
    }


def _page_context(request, run: GenerationRun) -> dict:
    return {"settings_rows": [(LABELS.get(key, key.replace("_", " ")), value)
                              for key, value in (run.config or {}).items()],
            "puzzle_count": Puzzle.objects.filter(generation_run=run).count()}


RUN_PAGES = RunPages(
    GenerationRun, "puzzles", "puzzles/run.html", "puzzles/_run_panel.html", "Generation run {pk}", BACK,
    may_act=is_trainer, cancel_run=generation_runs.cancel_run, resume_run=generation_runs.resume_run,
    panel_context=_panel_context, page_context=_page_context, after_resume=generation_runs.enqueue,
    stalled_hint="Resume carries on from the stage that did not finish.")
