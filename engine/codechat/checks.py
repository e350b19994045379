"""Turning a chat reply into a sandbox job against its conversation's task."""
from __future__ import annotations

import ast
import builtins

from engine.lm.code_extraction import extract_code, sanitize

TEST_TIMEOUT_S = 5.0
_BUILTINS = set(dir(builtins))


def entry_point_of(tests: list[str]) -> str:
    """The function the asserts test (`assert f(1) == 2` → "f"): in each assert the outermost call
    of a non-builtin name (`assert f([Pair(1, 2)]) == 1` tests f, not Pair), the most common one
    over the asserts; "" if none."""
    counts: dict[str, int] = {}
    for test in tests:
        first = next(iter(_called(test)), None)
        if first:
            counts[first] = counts.get(first, 0) + 1
    return max(counts, key=counts.get) if counts else ""


def called_names(tests: list[str]) -> set[str]:
    """Every non-builtin name the asserts call: what a reply must define beside the entry point
    (MBPP 601's tests build `Pair`s, which its solution defines)."""
    return {name for test in tests for name in _called(test)}


def _called(test: str) -> list[str]:
    """Non-builtin names called in one assert, outermost first (ast.walk is breadth-first)."""
    try:
        tree = ast.parse(test)
    except SyntaxError:
        return []
    return [node.func.id for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id not in _BUILTINS]


def split_tests(text: str) -> list[str]:
    """Asserts typed into a form: one per line (continuation lines join the assert above)."""
    tests: list[str] = []
    for line in text.replace("\r\n", "\n").split("\n"):
        if not line.strip():
            continue
        if line.lstrip().startswith("assert ") or not tests:
            tests.append(line.strip())
        else:
            tests[-1] += "\n" + line
    return tests


def validate_tests(tests: list[str]) -> list[str]:
    """Reasons the tests cannot be used (empty when they can)."""
    problems = []
    if not tests:
        problems.append("give at least one test, e.g. `assert add(1, 2) == 3`")
    for number, test in enumerate(tests, 1):
        if not test.startswith("assert "):
            problems.append(f"test {number} is not an assert statement")
            continue
        try:
            ast.parse(test)
        except SyntaxError as exc:
            problems.append(f"test {number} is not valid Python: {exc.msg}")
    return problems


def reply_code(kind: str, reply: str, entry_point: str = "", tests: list[str] = ()) -> str | None:
    """The code to test from a reply: a task wants `entry_point` (and what its `tests` call), a
    puzzle wants `sol`; as the benchmarks run it (sanitised: the reply's own example calls and
    asserts are not the test)."""
    wanted = "sol" if kind == "puzzle" else entry_point or None
    code = extract_code(reply, wanted)
    return sanitize(code, wanted, called_names(list(tests)) if kind != "puzzle" else ()) if code else None


def job_for(kind: str, code: str, *, tests: list[str] = (), sat: str = "", setup: str = "",
            job_id: str = "chat") -> dict:
    if kind == "puzzle":
        return {"id": job_id, "kind": "puzzle", "sat": sat, "sol": code, "timeout_s": TEST_TIMEOUT_S}
    if setup:  # MBPP's test_setup_code builds its trees from the solution's own classes: it runs after
        code = f"{code.rstrip()}\n\n{setup}\n"  # the code, as in MBPP's harness (and the benchmark's checks)
    return {"id": job_id, "kind": "tests", "code": code, "tests": list(tests), "all_tests": True,
            "timeout_s": TEST_TIMEOUT_S}
