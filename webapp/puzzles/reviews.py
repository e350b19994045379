"""What reviewers do to a puzzle: approve, reject or flag it (optionally one attempt), and edit it.

An edit is a new version: the old row stays (no longer current, so it leaves the list and
training data) and the new one is verified again with the old version's solutions.
"""
from __future__ import annotations

import ast

from django.db import transaction

from engine.selfplay import filters, puzzle_code
from webapp.accounts.roles import is_reviewer
from webapp.puzzles.models import Attempt, Puzzle, Review
from webapp.refusals import Invalid, NotAllowed

MAX_COMMENT = 2000
MAX_SAT_CHARS = 20_000


def _require_reviewer(user) -> None:
    if not is_reviewer(user):
        raise NotAllowed("only reviewers can review or edit puzzles")


def add_review(user, puzzle: Puzzle, verdict: str, comment: str = "", attempt: Attempt | None = None) -> Review:
    """Record a review; the puzzle's review state is its latest puzzle-level verdict."""
    _require_reviewer(user)
    if verdict not in Review.Verdict.values:
        raise Invalid(f"unknown verdict {verdict!r}; use approve, reject or flag")
    if attempt is not None and attempt.puzzle_id != puzzle.pk:
        raise Invalid("that attempt belongs to another puzzle")
    with transaction.atomic():
        review = Review.objects.create(puzzle=puzzle, attempt=attempt, user=user, verdict=verdict,
                                       comment=(comment or "").strip()[:MAX_COMMENT])
        fields = {"review_count": Review.objects.filter(puzzle=puzzle).count()}
        if attempt is None:
            fields["review_state"] = verdict
        elif verdict in (Review.Verdict.REJECT, Review.Verdict.FLAG):
            Attempt.objects.filter(pk=attempt.pk).update(kept=False)  # a bad solution leaves the data
        Puzzle.objects.filter(pk=puzzle.pk).update(**fields)
    return review


def validate_sat(sat: str) -> filters.Candidate:
    """The checked puzzle (normalised `sat`, answer type, fingerprint), or ValueError saying what is
    wrong with it (nothing runs here)."""
    sat = (sat or "").replace("\r\n", "\n").strip()
    if not sat:
        raise Invalid("the puzzle is empty")
    if len(sat) > MAX_SAT_CHARS:
        raise Invalid(f"the puzzle is longer than {MAX_SAT_CHARS:,} characters")
    candidate = filters.check_static(sat, set())
    if not candidate.accepted:
        raise Invalid(f"not a P3 puzzle ({candidate.rejected_by}): {candidate.detail}")
    return candidate


def as_typed(sat: str) -> str | None:
    """A reviewer's edit as written (docstring, comments, layout) when it is one `def sat`, which is
    what is verified and stored; None when it needs the normalised form (another name, extra code)."""
    sat = (sat or "").replace("\r\n", "\n").strip("\n").rstrip()
    try:
        tree = puzzle_code.parse(sat)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    one_sat = len(tree.body) == 1 and isinstance(tree.body[0], ast.FunctionDef) and tree.body[0].name == "sat"
    return sat if one_sat else None


def edit_puzzle(user, puzzle: Puzzle, sat: str, description: str | None = None) -> Puzzle:
    """A new version of `puzzle` with this `sat`; its solutions are queued for re-verification."""
    _require_reviewer(user)
    if not puzzle.is_current:
        raise Invalid("this is an old version; edit the current one")
    checked = validate_sat(sat)
    typed = as_typed(sat)
    with transaction.atomic():
        locked = Puzzle.objects.select_for_update().get(pk=puzzle.pk)
        if not locked.is_current:
            raise Invalid("someone else edited this puzzle first; reload it")
        new = Puzzle.objects.create(
            name=locked.name, description=locked.description if description is None else description.strip(),
            sat=typed or checked.sat, answer_type=checked.answer_type, fingerprint=checked.fingerprint,
            source=locked.source, split=locked.split, status=Puzzle.Status.UNVERIFIED, version=locked.version + 1,
            previous=locked, generation_run=locked.generation_run, model_name=locked.model_name,
            sampling=locked.sampling, created_by=user)
        Puzzle.objects.filter(pk=locked.pk).update(is_current=False)
        # The old version's distinct solutions, to be checked against the new `sat`.
        codes = list(dict.fromkeys(locked.attempts.filter(status__in=("passed", "reference"))
                                   .values_list("code", flat=True)))
        Attempt.objects.bulk_create([Attempt(puzzle=new, origin=Attempt.Origin.REFERENCE, code=code,
                                             status="queued", verdict={"status": "queued"}) for code in codes[:16]])
        transaction.on_commit(lambda: _reverify_later(new.pk))
    return new


def _reverify_later(puzzle_id: int) -> None:
    from webapp.puzzles.tasks import reverify

    reverify.delay(puzzle_id)
