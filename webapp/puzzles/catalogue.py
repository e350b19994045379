"""Puzzles into the database: P3 (idempotent import), the shipped seeds, and what a self-play
batch produced; and the per-puzzle numbers (status, difficulty) kept in step with attempts."""
from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction
from django.db.models import Count, Q

from engine.sandbox.answer_types import describe, parse_type_string
from engine.selfplay.filters import check_static
from engine.selfplay.instance_variants import variants
from engine.selfplay.p3 import load_p3
from engine.selfplay.puzzle_code import fingerprint
from engine.selfplay.search_solutions import search_solution
from engine.selfplay.seeds import SEED_PUZZLES
from engine.selfplay.training_text import normalised, shortest_distinct
from webapp.core.verification import sandbox
from webapp.puzzles.models import Attempt, Puzzle

P3_SOURCES = {"train": Puzzle.Source.P3_TRAIN, "validation": Puzzle.Source.P3_VALIDATION,
              "test": Puzzle.Source.P3_TEST, "other": Puzzle.Source.P3_OTHER}
REFERENCE_VERDICT = {"status": "passed", "detail": "reference solution (verified by the test suite)"}


def _answer_type(declared: str) -> str:
    """P3's `ans_type` as the filters write it (`List[int]`); as given when unreadable."""
    try:
        return describe(parse_type_string(declared))
    except ValueError:
        return declared


def import_p3(folder) -> dict[str, int]:
    """Every P3 instance, with its split, once: instances already imported (by name) are skipped.
    Reference solutions come in as unverified-by-us `reference` attempts, not as training pairs."""
    records = load_p3(folder)
    existing = set(Puzzle.objects.filter(source__in=P3_SOURCES.values()).values_list("name", flat=True))
    new = [r for r in records if r.name not in existing]
    with transaction.atomic():
        puzzles = Puzzle.objects.bulk_create([
            Puzzle(name=r.name, sat=r.sat, answer_type=_answer_type(r.answer_type),
                   fingerprint=fingerprint(r.sat), source=P3_SOURCES[r.split], split=r.split,
                   status=Puzzle.Status.UNVERIFIED)
            for r in new], batch_size=500)
        Attempt.objects.bulk_create([
            Attempt(puzzle=puzzle, origin=Attempt.Origin.REFERENCE, code=solution, status="reference",
                    verdict={"status": "reference", "detail": "P3 reference solution (not yet verified here)"})
            for puzzle, record in zip(puzzles, new) for solution in record.solutions[:4]], batch_size=500)
    return {"imported": len(new), "skipped": len(records) - len(new), "total": len(records)}


def add_variants(per_instance: int, seed: int = 0) -> dict[str, int]:
    """`per_instance` new instances of every P3 train (and no-split) puzzle whose reference passed
    here, each with that reference rewritten to the new values, as unverified `reference` attempts:
    `verify_references` then keeps the ones that pass. Never from the test split; idempotent."""
    if per_instance < 1:
        return {"created": 0}
    sources = [P3_SOURCES["train"], P3_SOURCES["other"]]
    references = (Attempt.objects.filter(origin=Attempt.Origin.REFERENCE, status="passed", kept=True,
                                         puzzle__source__in=sources, puzzle__is_current=True)
                  .exclude(puzzle__split__in=Puzzle.HELD_OUT).select_related("puzzle").order_by("puzzle_id", "id"))
    shortest: dict[int, Attempt] = {}
    for attempt in references:
        current = shortest.get(attempt.puzzle_id)
        if current is None or len(attempt.code) < len(current.code):
            shortest[attempt.puzzle_id] = attempt
    existing = set(Puzzle.objects.filter(source=Puzzle.Source.P3_VARIANT).values_list("name", flat=True))
    new = []
    for attempt in shortest.values():
        original = attempt.puzzle
        for index, variant in enumerate(variants(original.sat, attempt.code, per_instance, seed)):
            name = f"{original.name}~{index + 1}"
            if name not in existing:
                new.append((Puzzle(name=name, sat=variant.sat, answer_type=original.answer_type,
                                   fingerprint=fingerprint(variant.sat), source=Puzzle.Source.P3_VARIANT,
                                   split=original.split, status=Puzzle.Status.UNVERIFIED,
                                   description=f"{original.name} with new values for {', '.join(variant.changed)}"),
                            variant.sol))
    with transaction.atomic():
        puzzles = Puzzle.objects.bulk_create([puzzle for puzzle, _ in new], batch_size=500)
        Attempt.objects.bulk_create([
            Attempt(puzzle=puzzle, origin=Attempt.Origin.REFERENCE, code=sol, status="reference",
                    verdict={"status": "reference", "detail": "the original's reference solution, with the new values"})
            for puzzle, (_, sol) in zip(puzzles, new)], batch_size=500)
    return {"created": len(new)}


def import_seeds(puzzle_model=Puzzle, attempt_model=Attempt) -> int:
    """The project's own seed puzzles (each with a solution the test suite verifies); idempotent.
    The seeding migration passes its historical models."""
    existing = set(puzzle_model.objects.filter(source="seed").values_list("name", flat=True))
    added = 0
    with transaction.atomic():
        for seed in SEED_PUZZLES:
            if seed.name in existing:
                continue
            checked = check_static(seed.sat, set())
            puzzle = puzzle_model.objects.create(name=seed.name, description=seed.description, sat=seed.sat,
                                                 answer_type=checked.answer_type, fingerprint=checked.fingerprint,
                                                 source="seed", split="train", status="solved")
            attempt_model.objects.create(puzzle=puzzle, origin="reference", code=seed.sol, status="passed",
                                         verdict=REFERENCE_VERDICT, kept=True)
            added += 1
    return added


def verify_references(splits: Iterable[str] = ("train", "other"), timeout_s: float = 5.0) -> dict[str, int]:
    """Run the imported P3 reference solutions in the sandbox: those that pass become verified
    pairs (the shortest kept per puzzle), the rest keep their failing verdict. Test-split puzzles
    are left alone (they are for evaluation, never training). Idempotent: verified ones are skipped."""
    pending = list(Attempt.objects.filter(origin=Attempt.Origin.REFERENCE, status="reference",
                                          puzzle__split__in=list(splits)).select_related("puzzle"))
    return _verify(pending, timeout_s, "reference solution, run here")


def add_search_solutions(timeout_s: float = 1.0) -> dict[str, int]:
    """A search solution (engine/selfplay/search_solutions.py) for every integer-answer puzzle that
    may be trained on and has none yet, verified at once: those that pass are training pairs like
    any other solution. `timeout_s` is the evaluation judge's limit, so a kept search is one that
    would also count when the model writes it. Never for the test split; idempotent, and a call
    cut short (a killed process) leaves pending ones that the next call verifies."""
    puzzles = (Puzzle.objects.filter(is_current=True, answer_type="int")
               .exclude(split__in=Puzzle.HELD_OUT)
               .exclude(status=Puzzle.Status.REJECTED)
               .exclude(review_state__in=[Puzzle.ReviewState.REJECT, Puzzle.ReviewState.FLAG])
               .exclude(attempts__origin=Attempt.Origin.SEARCH))
    new = [Attempt(puzzle=puzzle, origin=Attempt.Origin.SEARCH, code=code, status="pending")
           for puzzle in puzzles if (code := search_solution(puzzle.sat))]
    with transaction.atomic():
        Attempt.objects.bulk_create(new, batch_size=500)
    pending = list(Attempt.objects.filter(origin=Attempt.Origin.SEARCH, status="pending").select_related("puzzle"))
    return {"written": len(new), **_verify(pending, timeout_s, "search solution, run here")}


def _verify(pending: list[Attempt], timeout_s: float, detail: str) -> dict[str, int]:
    """Sandbox verdicts for `pending` (their puzzles loaded), saved with the puzzles' kept pairs
    and numbers in one transaction."""
    jobs = [{"id": str(a.pk), "kind": "puzzle", "sat": a.puzzle.sat, "sol": a.code, "timeout_s": timeout_s}
            for a in pending]
    by_id = {str(a.pk): a for a in pending}
    counts = {"checked": len(pending), "passed": 0, "failed": 0}
    for verdict in sandbox().verify_many(jobs):
        attempt = by_id[verdict.id]
        attempt.status = verdict.status
        attempt.verdict = {"status": verdict.status, "detail": verdict.detail or detail}
        attempt.duration_ms = verdict.duration_ms or 0.0
        counts["passed" if verdict.status == "passed" else "failed"] += 1
    with transaction.atomic():
        Attempt.objects.bulk_update(pending, ["status", "verdict", "duration_ms"], batch_size=500)
        puzzles = {a.puzzle_id: a.puzzle for a in pending}
        for puzzle in puzzles.values():
            mark_kept(puzzle)
        refresh_stats(puzzles)
    return counts


def refresh_stats(puzzle_ids: Iterable[int]) -> None:
    """Status and difficulty (the models' solve rate) from the attempts, for these puzzles."""
    rows = (Attempt.objects.filter(puzzle_id__in=list(puzzle_ids))
            .values("puzzle_id")
            .annotate(model_total=Count("id", filter=Q(origin=Attempt.Origin.MODEL)),
                      model_ok=Count("id", filter=Q(origin=Attempt.Origin.MODEL, status="passed")),
                      any_ok=Count("id", filter=Q(status="passed")),
                      tried=Count("id", filter=~Q(origin__in=[Attempt.Origin.REFERENCE, Attempt.Origin.SEARCH])
                                  | Q(status="passed"))))
    for row in rows:
        fields = {"model_attempts": row["model_total"], "model_passed": row["model_ok"],
                  "difficulty": row["model_ok"] / row["model_total"] if row["model_total"] else None}
        if row["any_ok"]:
            fields["status"] = Puzzle.Status.SOLVED
        elif row["tried"]:
            fields["status"] = Puzzle.Status.UNSOLVED
        Puzzle.objects.filter(pk=row["puzzle_id"]).exclude(status=Puzzle.Status.REJECTED).update(**fields)


def mark_kept(puzzle: Puzzle, keep: int = 8) -> None:
    """The puzzle's shortest distinct verified solutions are its training pairs; no others."""
    passed = list(puzzle.attempts.filter(status="passed").values_list("pk", "code"))
    chosen = set(shortest_distinct([code for _, code in passed], keep))
    keep_ids, seen = [], set()
    for pk, code in passed:
        key = normalised(code)
        if key in chosen and key not in seen:
            seen.add(key)
            keep_ids.append(pk)
    puzzle.attempts.exclude(pk__in=keep_ids).filter(kept=True).update(kept=False)
    puzzle.attempts.filter(pk__in=keep_ids).update(kept=True)
