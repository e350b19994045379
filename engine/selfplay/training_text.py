"""Verified pairs as training data, as the paper's `preprocess.py` builds them: at most 8 distinct
solutions per puzzle (the shortest), each example written `f` / `g` / `assert f(g())`."""
from __future__ import annotations

import ast

from engine.selfplay.puzzle_code import answer_annotation, puzzle_name, rename_function, typed_solution

MAX_SOLUTIONS_PER_PUZZLE = 8


def normalised(solution: str) -> str:
    """Solutions that differ only in formatting, comments or docstrings are the same solution."""
    try:
        return rename_function(solution, "sol")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return solution.strip()


def shortest_distinct(solutions: list[str], keep: int = MAX_SOLUTIONS_PER_PUZZLE) -> list[str]:
    """The `keep` shortest distinct solutions (by normalised length, then text: deterministic)."""
    unique = {normalised(s): s for s in reversed(solutions)}  # first occurrence wins
    ordered = sorted(unique, key=lambda text: (len(text), text))
    return ordered[:keep]


def training_example(sat: str, solution: str) -> str:
    """One example in the paper's format: `def f…`, `def g…`, `assert f(g())`; `g` declares the
    answer's type, as the solving prompts open it."""
    f = rename_function(sat, "f")
    g = typed_solution(solution, "g", answer_annotation(sat), calls={puzzle_name(sat): "f"})
    return f"{f}\n\n{g}\n\nassert f(g())\n"


def is_training_example(text: str) -> bool:
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return False
    names = [node.name for node in tree.body if isinstance(node, ast.FunctionDef)]
    return names[:2] == ["f", "g"] and isinstance(tree.body[-1], ast.Assert)
