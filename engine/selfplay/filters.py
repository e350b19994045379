"""The filters a generated puzzle must pass before anyone tries to solve it, each counted.

In order: it parses; its signature is P3's (exactly one required parameter, annotated with a
supported answer type, the rest defaulted); the answer is used; it is not a duplicate (normalised
AST); the sandbox accepts it (a probe call with `return True` inserted, as in the paper's
`gen.py`); it is not trivial (no small canonical value of its answer type satisfies it, and
neither does one of its own default arguments: a puzzle solved by copying `b` teaches nothing). The
last two run in the sandbox, in one job per puzzle.
"""
from __future__ import annotations

import ast
import math
import re
from dataclasses import dataclass

from engine.sandbox.answer_types import TypeSpec, UnsupportedAnnotation, describe, parse_annotation
from engine.selfplay.puzzle_code import fingerprint, parse, rename_function, unparse

# Reasons a candidate is dropped, in the order they are checked (the run's counts use them).
PARSES, SIGNATURE, ANSWER_USED, DUPLICATE, SANDBOX, TRIVIAL = (
    "parses", "signature", "answer_used", "duplicate", "sandbox", "trivial")
FILTERS = (PARSES, SIGNATURE, ANSWER_USED, DUPLICATE, SANDBOX, TRIVIAL)
PROBE_TIMEOUT_S = 3.0
_SETUP = "from typing import List, Dict, Set, Tuple, Optional\n"


@dataclass
class Candidate:
    """A generated puzzle on its way through the filters."""
    source: str  # the model's function, as cut from the completion
    sat: str = ""  # normalised, renamed `sat`, once it parses
    answer_type: str = ""
    fingerprint: str = ""
    rejected_by: str = ""  # one of FILTERS, or "" while it survives
    detail: str = ""
    cause: str = ""  # why it did not parse: one of PARSE_CAUSES
    solution: str | None = None  # the `def sol` written with it (the pair form), verified as an attempt

    @property
    def accepted(self) -> bool:
        return not self.rejected_by

    def reject(self, reason: str, detail: str) -> Candidate:
        self.rejected_by, self.detail = reason, detail
        return self


def _answer_type(function: ast.FunctionDef) -> TypeSpec:
    """The annotated answer type; raises ValueError when the signature is not P3's."""
    args = function.args
    positional = args.posonlyargs + args.args
    if not positional:
        raise ValueError("no answer parameter")
    if args.vararg or args.kwarg or args.kwonlyargs:
        raise ValueError("*args, **kwargs and keyword-only parameters are not allowed")
    if len(args.defaults) != len(positional) - 1:
        raise ValueError("exactly one required parameter (the answer); every other needs a default")
    try:
        spec = parse_annotation(positional[0].annotation)
    except UnsupportedAnnotation as exc:
        raise ValueError(str(exc)) from None
    if spec == "bool":  # half of all bool puzzles are solved by guessing (the paper drops them; it keeps List[bool])
        raise ValueError("bool answers are not allowed")
    return spec


PARSE_CAUSES = ("truncated", "indentation", "prose", "syntax")


def parse_failure_cause(source: str, finish: str, error: BaseException) -> str:
    """Why a completion did not parse, for the funnel: cut by the token limit; mis-indented; English
    where code should be (a line of words after the signature); any other syntax error."""
    if finish == "length":
        return "truncated"
    if isinstance(error, IndentationError):
        return "indentation"
    body = [line.strip() for line in source.split("\n")[1:] if line.strip()]
    if not source.lstrip().startswith("def ") or any(_PROSE.match(line) for line in body[:3]):
        return "prose"
    return "syntax"


_PROSE = re.compile(r"^[A-Z][a-z]+( [a-z]+){3,}")  # "This puzzle checks that the ..."


def check_static(source: str, seen: set[str], finish: str = "", solution: str | None = None) -> Candidate:
    """Parse, signature, answer used, duplicate (against `seen`, which accepted ones join).
    `finish`: how the completion ended (its finish reason), to tell a truncated one."""
    candidate = Candidate(source, solution=solution)
    try:
        tree = parse(source)
        function = next(node for node in tree.body if isinstance(node, ast.FunctionDef))
    except (SyntaxError, ValueError, RecursionError, MemoryError, StopIteration) as exc:
        candidate.cause = parse_failure_cause(source, finish, exc)
        return candidate.reject(PARSES, f"does not parse ({candidate.cause}): "
                                        f"{getattr(exc, 'msg', None) or type(exc).__name__}")
    try:
        spec = _answer_type(function)
    except ValueError as exc:
        return candidate.reject(SIGNATURE, str(exc))
    if not any(isinstance(node, ast.Return) and node.value is not None for node in ast.walk(function)):
        return candidate.reject(SIGNATURE, "no return statement")
    answer = (function.args.posonlyargs + function.args.args)[0].arg
    used = any(isinstance(node, ast.Name) and node.id == answer and isinstance(node.ctx, ast.Load)
               for statement in function.body for node in ast.walk(statement))
    if not used:
        return candidate.reject(ANSWER_USED, f"the answer {answer!r} is never used")
    candidate.sat = rename_function(unparse(function), "sat")
    candidate.answer_type = describe(spec)
    candidate.fingerprint = fingerprint(candidate.sat)
    if candidate.fingerprint in seen:
        return candidate.reject(DUPLICATE, "the same puzzle as an earlier one (up to names and formatting)")
    seen.add(candidate.fingerprint)
    return candidate


# -- the sandbox's part -----------------------------------------------------------------------
_INTS = list(range(-10, 101))
_FLOATS = [0.0, 0.1, -0.1, 0.5, -0.5, 1.0, -1.0, 2.0, -2.0, 10.0, -10.0, 100.0, -100.0]
_STRS = ["", "a", "b", "ab", "aa", "abc", "hello", "Hello world", "0", "1", " ", "A", "x"]
_SMALL = {"int": [-1, 0, 1, 2, 3, 10], "float": [0.0, 1.0, -1.0, 0.5], "str": ["", "a", "b", "ab"], "bool": [False, True]}


def _small_values(spec: TypeSpec) -> list:
    """A few small values of a type, for building short lists of it."""
    if isinstance(spec, str):
        return _SMALL[spec]
    inner = _small_values(spec[1])
    return [[]] + [[v] for v in inner[:3]]


def trivial_answers(spec: TypeSpec) -> list:
    """Small canonical values of a type: ints -10..100, a few floats and short strings, and
    every list of length 0-2 over small values (nested for lists of lists)."""
    if spec == "int":
        return list(_INTS)
    if spec == "float":
        return list(_FLOATS)
    if spec == "str":
        return list(_STRS)
    values = _small_values(spec[1])
    return [[]] + [[v] for v in values] + [[v, w] for v in values for w in values]


def _matches(value, spec: TypeSpec) -> bool:
    """Whether a literal is a value of the answer type (an int is a float; a bool is neither; 1e999,
    which is inf and has no literal to write back, is left out)."""
    if isinstance(value, bool) or (isinstance(value, float) and not math.isfinite(value)):
        return False
    if isinstance(spec, str):
        return isinstance(value, {"int": int, "float": (int, float), "str": str}[spec])
    return isinstance(value, list) and all(_matches(item, spec[1]) for item in value)


def default_answers(sat: str, spec: TypeSpec) -> list:
    """The puzzle's literal default arguments that are values of its answer type: copying one is
    the paper's trivial filter's blind spot (`def sat(x: int, b=1230200): return x == b`)."""
    function = parse(sat).body[0]
    values = []
    for node in function.args.defaults:
        try:
            value = ast.literal_eval(node)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            continue
        if _matches(value, spec) and value not in values:
            values.append(value)
    return values


def _probe_source(sat: str) -> str:
    """`sat` renamed, with `return True` as its first statement: only defining and calling it runs."""
    function = parse(rename_function(sat, "__probe_sat")).body[0]
    function.body.insert(0, ast.Return(ast.Constant(True)))
    return unparse(function)


def sandbox_job(candidate: Candidate, job_id: str) -> dict:
    """One tests job: the probe call, then the first trivial answer that satisfies `sat` (or None)."""
    spec = parse_annotation(ast.Constant(candidate.answer_type))
    answers = default_answers(candidate.sat, spec) + trivial_answers(spec)
    helper = ("def __first_trivial():\n"
              f"    for answer in {answers!r}:\n"
              "        try:\n"
              "            if sat(answer) is True:\n"
              "                return answer\n"
              "        except Exception:\n"
              "            pass\n"
              "    return None\n")
    return {"id": job_id, "kind": "tests", "setup": _SETUP + helper,
            "code": candidate.sat + "\n\n" + _probe_source(candidate.sat),
            "tests": ["assert __probe_sat(None) == True", "assert __first_trivial() == None"],
            "timeout_s": PROBE_TIMEOUT_S}


def apply_sandbox_verdict(candidate: Candidate, verdict: dict) -> Candidate:
    """Read the probe job's verdict into the candidate (rejecting it when the sandbox did not accept
    it, or when a trivial answer satisfied it)."""
    rows = verdict.get("tests") or []
    probe = rows[0] if rows else {"status": verdict.get("status"), "detail": verdict.get("detail", "")}
    if probe.get("status") != "passed":
        return candidate.reject(SANDBOX, f"the probe run failed ({probe.get('status')}): "
                                         f"{probe.get('detail') or verdict.get('detail', '')}")
    trivial = rows[1] if len(rows) > 1 else {"status": verdict.get("status"), "detail": verdict.get("detail", "")}
    if trivial.get("status") == "failed":
        return candidate.reject(TRIVIAL, f"a trivial answer satisfies it: {trivial.get('detail', '')}")
    if trivial.get("status") != "passed":
        return candidate.reject(SANDBOX, f"small inputs made it fail ({trivial.get('status')}): "
                                         f"{trivial.get('detail', '')}")
    return candidate
