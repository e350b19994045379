"""The review queue, as in Argilla: each reviewer walks the puzzles (or solved attempts) they have
not reviewed yet, one at a time; progress per reviewer and overall; bulk verdicts on a selection;
where two reviewers judged the same puzzle, whether they agree; and the guidelines beside it all.

A reviewer's own queue (not "nobody has reviewed it") is what lets a second reviewer look at the
same puzzles, which is what agreement needs.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Count, Exists, OuterRef

from webapp.accounts.roles import is_reviewer
from webapp.puzzles.models import Attempt, Puzzle, Review, ReviewGuidelines
from webapp.puzzles.reviews import add_review
from webapp.refusals import Invalid, NotAllowed

KINDS = ("puzzles", "attempts")
MAX_BULK = 200
MAX_GUIDELINES = 20_000


def _mine(user, attempts: bool):
    reviews = Review.objects.filter(user=user)
    if attempts:
        return reviews.filter(attempt=OuterRef("pk"))
    return reviews.filter(puzzle=OuterRef("pk"), attempt__isnull=True)


def puzzles_in_queue():
    return Puzzle.objects.filter(is_current=True)


def attempts_in_queue():
    """Attempts the sandbox verified (the ones that can become training data)."""
    return Attempt.objects.filter(puzzle__is_current=True, status="passed")


def pending(user, kind: str = "puzzles"):
    """What `user` has not reviewed yet, oldest first."""
    if kind == "attempts":
        return attempts_in_queue().exclude(Exists(_mine(user, True))).select_related("puzzle").order_by("pk")
    return puzzles_in_queue().exclude(Exists(_mine(user, False))).order_by("pk")


def next_item(user, kind: str = "puzzles", after: int = 0):
    """The next pending item after `after` (a skip moves past one), wrapping to the start."""
    items = pending(user, kind)
    return items.filter(pk__gt=after).first() or items.first()


@dataclass
class Progress:
    total: int
    mine: int  # reviewed by this reviewer
    anyone: int  # reviewed by at least one reviewer
    by_reviewer: list[tuple[str, int]]

    @property
    def mine_percent(self) -> int:
        return round(100 * self.mine / self.total) if self.total else 0


def progress(user, kind: str = "puzzles") -> Progress:
    if kind == "attempts":
        items, reviews = attempts_in_queue(), Review.objects.filter(attempt__in=attempts_in_queue())
        key = "attempt"
    else:
        items, reviews = puzzles_in_queue(), Review.objects.filter(puzzle__in=puzzles_in_queue(),
                                                                    attempt__isnull=True)
        key = "puzzle"
    per_user = (reviews.values("user__username").annotate(n=Count(key, distinct=True)).order_by("-n",
                                                                                                  "user__username"))
    by_reviewer = [(row["user__username"], row["n"]) for row in per_user]
    mine = reviews.filter(user=user).values(key).distinct().count()
    return Progress(items.count(), mine, reviews.values(key).distinct().count(), by_reviewer)


def _latest(puzzles) -> dict[int, dict[str, str]]:
    """Per puzzle, each reviewer's latest puzzle-level verdict (by username), in one query."""
    latest: dict[int, dict[str, str]] = defaultdict(dict)
    for puzzle_id, username, verdict in (Review.objects.filter(puzzle__in=puzzles, attempt__isnull=True)
                                         .order_by("created_at", "pk")
                                         .values_list("puzzle_id", "user__username", "verdict")):
        latest[puzzle_id][username] = verdict
    return latest


def latest_verdicts(puzzle: Puzzle) -> dict[str, str]:
    """Each reviewer's latest puzzle-level verdict on `puzzle`, by username."""
    return _latest([puzzle.pk]).get(puzzle.pk, {})


def agreement_of(verdicts: dict[str, str]) -> bool | None:
    """None with fewer than two reviewers; else whether all of them gave the same verdict."""
    return None if len(verdicts) < 2 else len(set(verdicts.values())) == 1


@dataclass
class Agreement:
    puzzles: int  # current puzzles with two or more reviewers
    agreed: int

    @property
    def percent(self) -> int | None:
        return round(100 * self.agreed / self.puzzles) if self.puzzles else None


def agreement() -> Agreement:
    """Over current puzzles reviewed by two or more people: on how many their latest verdicts agree."""
    judged = [agreement_of(verdicts) for verdicts in _latest(puzzles_in_queue()).values()]
    shared = [agreed for agreed in judged if agreed is not None]
    return Agreement(len(shared), sum(shared))


def bulk_review(user, puzzle_ids: list[str], verdict: str, comment: str = "") -> int:
    """The same verdict on each selected current puzzle (reviewers only, like one review)."""
    if not is_reviewer(user):
        raise NotAllowed("approving, rejecting and flagging are for reviewers")
    ids = sorted({int(i) for i in puzzle_ids if str(i).isdigit()})
    if not ids:
        raise Invalid("select at least one puzzle")
    if len(ids) > MAX_BULK:
        raise Invalid(f"at most {MAX_BULK} puzzles at once")
    puzzles = list(Puzzle.objects.filter(pk__in=ids, is_current=True))
    if len(puzzles) != len(ids):
        raise Invalid("some selected puzzles are old versions or gone; reload the list")
    with transaction.atomic():
        for puzzle in puzzles:
            add_review(user, puzzle, verdict, comment)
    return len(puzzles)


def save_guidelines(user, text: str) -> ReviewGuidelines:
    if not (user.is_authenticated and user.is_staff):
        raise NotAllowed("only admins can edit the review guidelines")
    text = (text or "").replace("\r\n", "\n").strip()
    if len(text) > MAX_GUIDELINES:
        raise Invalid(f"the guidelines are longer than {MAX_GUIDELINES:,} characters")
    return ReviewGuidelines.objects.create(text=text, updated_by=user)

