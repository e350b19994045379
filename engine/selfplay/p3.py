"""P3 puzzles from `puzzles.json` + `split.json`: one record per instance, with its split.

Splits are by problem (the part of the name before ':'): 155 train and 228 test problems;
problems in neither are `other`. A fixed fifth of the train problems (`is_validation_problem`: a
hash of the name, so no file is needed to know it) is held out as `validation`: what the round
gate selects on, so the test split is only ever reported. Test and validation puzzles are for
evaluation only: `training_safe` is the check every dataset the project builds for prompts or
training goes through.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

HELD_OUT = ("test", "validation")  # splits that never reach a prompt or training data


class TestSplitLeak(ValueError):
    """A held-out (test or validation) puzzle reached something meant for prompts or training."""

    __test__ = False  # not a pytest test class


def is_validation_problem(problem: str) -> bool:
    """Is this P3 *train* problem held out for validation? One in five, by a hash of its name."""
    return int(hashlib.sha256(problem.encode("utf-8")).hexdigest()[:8], 16) % 5 == 0


@dataclass(frozen=True)
class P3Puzzle:
    name: str  # instance name, e.g. "Study_1:0"
    problem: str  # e.g. "Study_1"
    sat: str
    answer_type: str
    solutions: tuple[str, ...]  # reference solutions, each a complete `def sol(...)`
    split: str  # "train" | "validation" | "test" | "other"


def load_p3(folder: str | Path) -> list[P3Puzzle]:
    """Every instance of `<folder>/puzzles.json`, split by `<folder>/split.json`."""
    folder = Path(folder)
    try:
        puzzles = json.loads((folder / "puzzles.json").read_text(encoding="utf-8"))
        split = json.loads((folder / "split.json").read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"P3 data not found: {exc.filename} (expected puzzles.json and split.json)") from None
    split_of = {problem: name for name in ("train", "test") for problem in split.get(name, [])}
    split_of.update({problem: "validation" for problem, name in split_of.items()
                     if name == "train" and is_validation_problem(problem)})
    records = []
    for row in puzzles:
        problem = row["name"].split(":")[0]
        header = row.get("sol_header") or "def sol():"
        solutions = tuple(f"{header}\n{body}" for body in row.get("sol_bodies") or [])
        records.append(P3Puzzle(row["name"], problem, row["sat"], row.get("ans_type", ""), solutions,
                                split_of.get(problem, "other")))
    return records


def training_safe(puzzles, what: str = "this dataset"):
    """The puzzles, unchanged, if none is held out (test or validation); raises TestSplitLeak otherwise."""
    leaked = [getattr(p, "name", None) or p.sat.split("\n")[0] for p in puzzles if p.split in HELD_OUT]
    if leaked:
        raise TestSplitLeak(f"{len(leaked)} held-out puzzle(s) in {what} (e.g. {leaked[0]}); "
                            "the test and validation splits are for evaluation only")
    return puzzles


def one_per_problem(puzzles):
    """The first instance of each problem, as the paper's prompts and test set use them."""
    first: dict[str, P3Puzzle] = {}
    for puzzle in puzzles:
        first.setdefault(puzzle.problem, puzzle)
    return list(first.values())
