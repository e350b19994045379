"""Search solutions: a `sol` for an integer-answer puzzle that carries its own copy of the puzzle
and tries every integer in a fixed range until the copy returns True.

Why: a P3 puzzle counts as solved by any answer that `sat` accepts, and many puzzles with an
`int` answer are solved by plain search (P3's own enumerative baselines solve some). A small
model cannot invent a method for most puzzles, but copying text it has just read is one of the
few things it does well. Training pairs in this shape teach it a method it can apply to a puzzle
it has never seen: copy `f`, then search. The solution never calls the puzzle it is checked
against (the sandbox runs the two apart); it checks its own copy, so a search solution is an
ordinary program, verified like every other one.

This module only writes source. Whether a search solution is kept is the sandbox's call, under
the same per-run time limit the evaluation's judge uses, so a kept search also finishes in time
when the model writes it.
"""
from __future__ import annotations

import textwrap
from collections import Counter
from collections.abc import Callable, Iterable, Sequence

from engine.selfplay.puzzle_code import answer_annotation, extra_parameter_names, extra_parameters, rename_function

SEARCH_RANGE = (-1000, 100_000)  # P3's integer answers outside it are rarely found by search in 1 s
CHECK_NAME = "check"  # the copy's name: the same in every example, so one shape is learned


def search_solution(sat: str, name: str = "sol") -> str | None:
    """`def sol(<sat's extra parameters>) -> int:` with `sat` nested as `check` and a loop over
    SEARCH_RANGE that returns the first integer `check` accepts for the solution's own arguments
    (an exception counts as no). None when the answer is not an `int` or `sat` cannot be read."""
    try:
        if answer_annotation(sat) != "int":
            return None
        copy = rename_function(sat, CHECK_NAME)
        header = f"def {name}({extra_parameters(sat)}) -> int:"
        call = f"{CHECK_NAME}({', '.join(['x', *extra_parameter_names(sat)])})"
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    low, high = SEARCH_RANGE
    return (f"{header}\n{textwrap.indent(copy, '    ')}\n"
            f"    for x in range({low}, {high}):\n"
            f"        try:\n"
            f"            if {call}:\n"
            f"                return x\n"
            f"        except Exception:\n"
            f"            pass\n")


def search_reach(sats: Sequence[tuple[str, str]], verify: Callable[[list[dict]], Iterable],
                 timeout_s: float = 1.0) -> dict:
    """How far the search template alone gets on (name, sat) puzzles: the most a model that learned
    it perfectly could solve with it. A diagnostic: it never writes training data."""
    jobs = [{"id": name, "kind": "puzzle", "sat": sat, "sol": code, "timeout_s": timeout_s}
            for name, sat in sats if (code := search_solution(sat))]
    verdicts = list(verify(jobs))
    return {"puzzles": len(sats), "integer_answers": len(jobs),
            "statuses": dict(Counter(v.status for v in verdicts)),
            "solved": sorted(v.id for v in verdicts if v.status == "passed")}
