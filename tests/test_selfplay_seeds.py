"""The shipped seed puzzles: well formed, solved by their own solutions in the sandbox, not solved by
small canonical answers, and not copies of P3 puzzles. Puzzle code only ever runs in the sandbox."""
from __future__ import annotations

import ast
import json
import re

import pytest

from engine.sandbox import verify_many
from engine.sandbox.analysis import analyse_puzzle
from engine.sandbox.answer_types import describe
from engine.selfplay.seeds import SEED_PUZZLES
from tests.support import BENCHMARK_DATA

SMALL_INTS = list(range(-10, 101))
SMALL_FLOATS = [0.0] + [sign * v for v in (100.0, 10.0, 2.0, 1.0, 0.5, 0.1) for sign in (1, -1)]
SMALL_STRS = ["", "a", "ab", "abc", "hello", "0", "1", " ", "x", "test"]
LIST_INTS = list(range(-10, 21))  # elements of short int lists
NESTED_INTS = [-1, 0, 1, 2, 3]  # elements of the inner lists of List[List[int]]


def _short_lists(elements: list) -> list[list]:
    """Every list of length 0, 1 or 2 over `elements`."""
    return [[]] + [[a] for a in elements] + [[a, b] for a in elements for b in elements]


def candidates(spec) -> list:
    """Small canonical answers of an answer type (as `analyse_puzzle` reads it)."""
    if spec == "int":
        return SMALL_INTS
    if spec == "float":
        return SMALL_FLOATS
    if spec == "str":
        return SMALL_STRS
    if spec == "bool":
        return [False, True]
    inner = spec[1]
    elements = {"int": LIST_INTS, "float": SMALL_FLOATS, "str": SMALL_STRS, "bool": [False, True]}.get(inner)
    if elements is None:  # a nested list: its elements are short lists of the inner type
        elements = _short_lists(NESTED_INTS) if inner == ("list", "int") else _short_lists(candidates(inner)[:6])
    return _short_lists(elements)


def _signature(function: ast.FunctionDef, skip: int) -> list[tuple[str, str]]:
    """(name, default source) of the positional parameters after the first `skip`."""
    args = function.args
    positional = args.posonlyargs + args.args
    defaults = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    return [(a.arg, ast.dump(d) if d is not None else "") for a, d in zip(positional, defaults)][skip:]


def _function(source: str, name: str) -> ast.FunctionDef:
    return next(n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef) and n.name == name)


def test_seeds_are_well_formed():
    assert len(SEED_PUZZLES) >= 30
    names = [seed.name for seed in SEED_PUZZLES]
    assert len(set(names)) == len(names), "duplicate seed names"
    for seed in SEED_PUZZLES:
        assert re.fullmatch(r"Seed_[A-Z][A-Za-z0-9]+", seed.name), seed.name
        assert seed.description.strip() and "\n" not in seed.description, seed.name
        spec = analyse_puzzle(seed.sat, seed.sol)  # raises on a bad form or unsupported type
        assert spec.sat_name == "sat" and spec.sol_name == "sol", seed.name
        assert describe(spec.answer_type) in {"int", "float", "str", "bool", "List[int]", "List[str]",
                                              "List[float]", "List[List[int]]"}, seed.name
        sat, sol = _function(seed.sat, "sat"), _function(seed.sol, "sol")
        assert all(param[1] for param in _signature(sat, 1)), f"{seed.name}: sat's extra parameters need defaults"
        assert _signature(sol, 0) == _signature(sat, 1), f"{seed.name}: sol's parameters differ from sat's"
        assert not sol.args.kwonlyargs and not sat.args.kwonlyargs, seed.name
        imports = [n for tree in (sat, sol) for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
        assert all(isinstance(n, ast.Import) and [a.name for a in n.names] == ["math"] for n in imports), seed.name


def test_every_seed_solution_verifies_in_the_sandbox():
    jobs = [{"id": seed.name, "kind": "puzzle", "sat": seed.sat, "sol": seed.sol} for seed in SEED_PUZZLES]
    verdicts = list(verify_many(jobs))
    assert len(verdicts) == len(jobs)
    failures = [(v.id, v.status, v.detail) for v in verdicts if not v.passed]
    assert not failures, failures


TRIVIAL_HELPER = '''

def first_trivial():
    for candidate in CANDIDATES:
        try:
            if sat(candidate) is True:
                return candidate
        except Exception:
            pass
    return None
'''


def _trivial_job(job_id: str, sat: str, answer_type) -> dict:
    # `List` is not predefined in a tests job, and sat's annotation is evaluated when it is defined.
    code = f"from typing import List\n\n{sat}\n\nCANDIDATES = {candidates(answer_type)!r}{TRIVIAL_HELPER}"
    return {"id": job_id, "kind": "tests", "code": code, "tests": ["assert first_trivial() == None"], "timeout_s": 5}


# Puzzles that small candidates do solve: they show the check can fail at all.
CONTROLS = {
    "control_int": ("def sat(x: int, k=7) -> bool:\n    return x * x == 49 and x > k - 8", 7),
    "control_nested": ("def sat(x: List[List[int]]) -> bool:\n    return x == [[2, 3], []]", [[2, 3], []]),
}


def test_no_seed_is_solved_by_a_small_canonical_answer():
    # One tests job per seed: the sandbox tries every small candidate against sat.
    jobs = [_trivial_job(seed.name, seed.sat, analyse_puzzle(seed.sat, seed.sol).answer_type)
            for seed in SEED_PUZZLES]
    jobs += [_trivial_job(name, sat, analyse_puzzle(sat, "def sol(): pass").answer_type)
             for name, (sat, _) in CONTROLS.items()]
    verdicts = {v.id: v for v in verify_many(jobs)}
    assert len(verdicts) == len(jobs)
    for name, (_, answer) in CONTROLS.items():
        control = verdicts.pop(name)
        assert control.status == "failed" and repr(answer) in control.tests[0]["detail"], control
    trivial = [(v.id, v.status, v.detail, v.tests[0].get("detail") if v.tests else None)
               for v in verdicts.values() if not v.passed]
    assert not trivial, trivial


def _normalise(source: str) -> str:
    return " ".join(source.split())


def test_no_seed_copies_a_p3_puzzle():
    path = BENCHMARK_DATA / "p3" / "puzzles.json"
    if not path.exists():
        pytest.fail(f"P3 data not found at {path} (set AUTODIDACT_BENCHMARK_DATA)")
    p3 = json.loads(path.read_text())
    p3_sats = {_normalise(puzzle["sat"]) for puzzle in p3}
    p3_names = {puzzle["name"] for puzzle in p3}
    copies = [seed.name for seed in SEED_PUZZLES if _normalise(seed.sat) in p3_sats]
    assert not copies, copies
    clashes = [seed.name for seed in SEED_PUZZLES if seed.name in p3_names or seed.name.split(":")[0] in p3_names]
    assert not clashes, clashes
