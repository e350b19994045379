"""The puzzle list's filters and sorts as one queryset, shaped for the indexes in models.Meta so
a page stays fast at 100,000 puzzles: two queries (a count and one page of rows, no per-row
queries) whatever the filters."""
from __future__ import annotations

import math
from dataclasses import dataclass

from django.core.paginator import Paginator
from django.db.models import Q, QuerySet

from webapp.puzzles.models import Puzzle

PAGE_SIZE = 50
SORTS = {
    "new": ("-created_at", "-id"),
    "old": ("created_at", "id"),
    "hard": ("difficulty", "-id"),  # lowest solve rate first (unsolved-by-model puzzles have none)
    "easy": ("-difficulty", "-id"),
    "attempts": ("-model_attempts", "-id"),
    "name": ("name", "id"),
}
LIST_FIELDS = ("id", "name", "sat", "answer_type", "source", "split", "status", "difficulty", "model_attempts",
               "model_passed", "review_state", "review_count", "version", "created_at", "model_name", "iteration",
               "model_version__name")


@dataclass
class ListFilters:
    source: str = ""
    split: str = ""
    status: str = ""
    review: str = ""  # "", "any" (has a review), "none", or a review state
    min_difficulty: float | None = None
    max_difficulty: float | None = None
    q: str = ""
    run: int | None = None  # a generation run's puzzles
    sort: str = "new"

    @classmethod
    def from_query(cls, params) -> ListFilters:
        def number(name):
            """A solve rate: "0.25", "25" and "25%" all mean 0.25."""
            raw = str(params.get(name, "")).strip()
            try:
                value = float(raw.rstrip("%"))
            except ValueError:
                return None
            if not math.isfinite(value):
                return None
            if raw.endswith("%") or value > 1:
                value /= 100
            return min(max(value, 0.0), 1.0)

        def choice(name, allowed):
            value = params.get(name, "")
            return value if value in allowed else ""

        return cls(source=choice("source", Puzzle.Source.values), split=choice("split", Puzzle.Split.values),
                   status=choice("status", Puzzle.Status.values),
                   review=choice("review", ("any", "none", "approve", "reject", "flag")),
                   min_difficulty=number("min_difficulty"), max_difficulty=number("max_difficulty"),
                   q=params.get("q", "").strip()[:200],
                   run=int(params["run"]) if str(params.get("run", "")).isdigit() else None,
                   sort=params.get("sort") if params.get("sort") in SORTS else "new")

    def queryset(self) -> QuerySet:
        puzzles = Puzzle.objects.filter(is_current=True)
        for field in ("source", "split", "status"):
            if getattr(self, field):
                puzzles = puzzles.filter(**{field: getattr(self, field)})
        if self.review == "any":
            puzzles = puzzles.filter(review_count__gt=0)
        elif self.review == "none":
            puzzles = puzzles.filter(review_count=0)
        elif self.review:
            puzzles = puzzles.filter(review_state=self.review)
        if self.min_difficulty is not None:
            puzzles = puzzles.filter(difficulty__gte=self.min_difficulty)
        if self.max_difficulty is not None:
            puzzles = puzzles.filter(difficulty__lte=self.max_difficulty)
        if self.run is not None:
            puzzles = puzzles.filter(generation_run_id=self.run)
        if self.q:
            puzzles = puzzles.filter(Q(sat__icontains=self.q) | Q(name__icontains=self.q))
        return puzzles.select_related("model_version").order_by(*SORTS[self.sort]).only(*LIST_FIELDS)

    def as_query(self) -> dict:
        """The filters as URL parameters (empty ones left out), for links that keep them."""
        values = {"source": self.source, "split": self.split, "status": self.status, "review": self.review,
                  "min_difficulty": self.min_difficulty, "max_difficulty": self.max_difficulty, "q": self.q,
                  "run": self.run, "sort": "" if self.sort == "new" else self.sort}
        return {k: v for k, v in values.items() if v not in ("", None)}


def page_of(filters: ListFilters, number) -> object:
    return Paginator(filters.queryset(), PAGE_SIZE).get_page(number)
