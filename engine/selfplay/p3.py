"""P3 puzzles from `puzzles.json` + `split.json`: one record per instance, with its split.

Splits are by problem (the part of the name before ':'): 155 train and 228 test problems;
problems in neither are `other`. Test puzzles are for evaluation only: `training_safe` is the
check every dataset the project builds for prompts or training goes through.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


class TestSplitLeak(ValueError):
    """A test-split puzzle reached something meant for prompts or training."""

    __test__ = False  # not a pytest test class


@dataclass(frozen=True)
class P3Puzzle:
    name: str  # instance name, e.g. "Study_1:0"
    problem: str  # e.g. "Study_1"
    sat: str
    answer_type: str
    solutions: tuple[str, ...]  # reference solutions, each a complete `def sol(...)`
    split: str  # "train" | "test" | "other"


def load_p3(folder: str | Path) -> list[P3Puzzle]:
    """Every instance of `<folder>/puzzles.json`, split by `<folder>/split.json`."""
    folder = Path(folder)
    try:
        puzzles = json.loads((folder / "puzzles.json").read_text(encoding="utf-8"))
        split = json.loads((folder / "split.json").read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"P3 data not found: {exc.filename} (expected puzzles.json and split.json)") from None
    split_of = {problem: name for name in ("train", "test") for problem in split.get(name, [])}
    records = []
    for row in puzzles:
        problem = row["name"].split(":")[0]
        header = row.get("sol_header") or "def sol():"
        solutions = tuple(f"{header}\n{body}" for body in row.get("sol_bodies") or [])
        records.append(P3Puzzle(row["name"], problem, row["sat"], row.get("ans_type", ""), solutions,
                                split_of.get(problem, "other")))
    return records


def training_safe(puzzles, what: str = "this dataset"):
    """The puzzles, unchanged, if none is from the test split; raises TestSplitLeak otherwise."""
    leaked = [getattr(p, "name", None) or p.sat.split("\n")[0] for p in puzzles if p.split == "test"]
    if leaked:
        raise TestSplitLeak(f"{len(leaked)} test-split puzzle(s) in {what} (e.g. {leaked[0]}); "
                            "the test split is for evaluation only")
    return puzzles


def one_per_problem(puzzles):
    """The first instance of each problem, as the paper's prompts and test set use them."""
    first: dict[str, P3Puzzle] = {}
    for puzzle in puzzles:
        first.setdefault(puzzle.problem, puzzle)
    return list(first.values())
