"""Solutions people write ("solve it yourself") and re-verification of an edited puzzle: both run
in the sandbox on a verify worker, never in the web process."""
from __future__ import annotations

from celery.exceptions import TimeoutError as CeleryTimeoutError
from django.db import transaction

from engine.selfplay.solving_prompts import as_sol
from webapp.core.verification import sandbox
from webapp.puzzles.catalogue import mark_kept, refresh_stats
from webapp.puzzles.models import Attempt, Puzzle
from webapp.refusals import Invalid, Unavailable

MAX_SOLUTION_CHARS = 20_000
WAIT_S = 30.0
TIMEOUT_S = 5.0
NO_VERIFY_WORKER = (f"no verify worker answered within {WAIT_S:.0f} s, so the solution was not checked. "
                    "Try again once the workers are running (see Health).")


def _job(puzzle: Puzzle, code: str, job_id: str) -> dict:
    return {"id": job_id, "kind": "puzzle", "sat": puzzle.sat, "sol": code, "timeout_s": TIMEOUT_S}


def _verify_on_worker(jobs: list[dict]) -> list[dict]:
    from webapp.core.tasks import verify_batch

    return verify_batch.delay(jobs).get(timeout=WAIT_S)


def solve_yourself(user, puzzle: Puzzle, code: str) -> Attempt:
    """Verify a person's `sol` (or `g`) in the sandbox and keep it as a user attempt.

    Raises Invalid for empty or oversized code, Unavailable when no verify worker answers; a verdict
    (pass or not) is always an Attempt."""
    code = (code or "").replace("\r\n", "\n").strip()
    if not code:
        raise Invalid("write a function first, e.g. def sol(): return ...")
    if len(code) > MAX_SOLUTION_CHARS:
        raise Invalid(f"the solution is longer than {MAX_SOLUTION_CHARS:,} characters")
    named = as_sol(code) if "def sol" not in code else code + "\n"
    try:
        verdict = _verify_on_worker([_job(puzzle, named or code, "user")])[0]
    except (CeleryTimeoutError, TimeoutError):
        raise Unavailable(NO_VERIFY_WORKER) from None
    with transaction.atomic():
        attempt = Attempt.objects.create(puzzle=puzzle, origin=Attempt.Origin.USER, code=named or code,
                                         status=verdict["status"], verdict=verdict, user=user,
                                         duration_ms=verdict.get("duration_ms", 0.0))
        refresh_stats([puzzle.pk])
        if attempt.passed and puzzle.split not in Puzzle.HELD_OUT:
            mark_kept(puzzle)
    attempt.refresh_from_db()
    return attempt


def reverify(puzzle_id: int) -> str:
    """Check an edited puzzle's queued solutions against its new `sat`; its status follows."""
    puzzle = Puzzle.objects.get(pk=puzzle_id)
    queued = list(puzzle.attempts.filter(status="queued"))
    verdicts = {v.id: v.as_dict() for v in sandbox().verify_many([_job(puzzle, a.code, str(a.pk)) for a in queued])}
    with transaction.atomic():
        for attempt in queued:
            verdict = verdicts.get(str(attempt.pk), {"status": "error", "detail": "not verified"})
            Attempt.objects.filter(pk=attempt.pk).update(status=verdict["status"], verdict=verdict)
        refresh_stats([puzzle.pk])
        if not queued or not any(v["status"] == "passed" for v in verdicts.values()):
            Puzzle.objects.filter(pk=puzzle.pk).exclude(status=Puzzle.Status.REJECTED).update(
                status=Puzzle.Status.UNSOLVED if queued else Puzzle.Status.UNVERIFIED)
        mark_kept(puzzle)
    return Puzzle.objects.get(pk=puzzle.pk).status
