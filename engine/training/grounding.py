"""The grounding function of RL from execution feedback (the RLCF paper's reward, for Python): a
program earns more the further it gets — parses, passes a static check, runs, passes some tests,
passes all — and an optional discriminator's score is added with a weight.

The static check is pyflakes (undefined names, names used before assignment, duplicate arguments,
…): the Python counterpart of the paper's compiler checks; it only parses, never runs the code.
Execution is graded from the sandbox's verdicts alone, every test run (`all_tests`), so a program
that returns an always-equal object, exits early or patches a builtin gets what a wrong program
gets (the sandbox compares values outside the run and gives tests pristine builtins).
"""
from __future__ import annotations

import ast
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

from engine.codechat.checks import entry_point_of, job_for, reply_code
from engine.config import Problems, StrictConfig

Verify = Callable[[list[dict]], Iterable]
MAX_STATIC_CHARS = 20_000  # longer programs are not analysed (and score as unparsed)
STATIC_ERRORS = ("UndefinedName", "UndefinedLocal", "UndefinedExport", "DuplicateArgument", "ReturnOutsideFunction",
                 "YieldOutsideFunction", "ContinueOutsideLoop", "BreakOutsideLoop", "DefaultExceptNotLast",
                 "TwoStarredExpressions", "TooManyExpressionsInStarredAssignment", "ForwardAnnotationSyntaxError")


@dataclass(frozen=True)
class GroundingConfig(StrictConfig):
    """The reward's levels (settings; recorded with every round). Levels rise strictly:
    no code = syntax error < runtime error < runs but fails every test < passes some < passes all."""

    KIND = "grounding settings"

    syntax_error: float = 0.0
    runtime_error: float = 0.2
    fails_tests: float = 0.4
    passes_some: float = 0.5  # plus (passes_all - passes_some) x the fraction passed, below passes_all
    passes_all: float = 1.0
    static_penalty: float = 0.1  # taken off when pyflakes finds an error (floored at syntax_error)
    discriminator_weight: float = 0.0  # x (discriminator's P(reference-like) - 0.5)
    timeout_s: float = 3.0

    def check(self) -> GroundingConfig:
        problems = Problems()
        levels = [self.syntax_error, self.runtime_error, self.fails_tests, self.passes_some, self.passes_all]
        if any(low >= high for low, high in zip(levels, levels[1:])):
            problems.add("levels", "levels must rise: syntax_error < runtime_error < fails_tests < passes_some "
                                   "< passes_all")
        if self.static_penalty < 0 or self.discriminator_weight < 0:
            problems.add("weights", "static_penalty and discriminator_weight must be at least 0")
        if self.timeout_s <= 0:
            problems.add("timeout_s", "timeout_s must be above 0")
        problems.raise_any()
        return self


@dataclass(frozen=True)
class Reward:
    total: float
    parses: bool
    static_errors: int  # pyflakes findings of the kinds in STATIC_ERRORS
    runs: bool  # the code ran (no error before or while running the tests)
    passed: int
    tests: int
    status: str  # the sandbox's status, or "no code" / "syntax error"
    execution: float  # the graded execution level alone
    discriminator: float | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def static_errors(code: str) -> int | None:
    """pyflakes' error findings in `code`; None when it does not parse (or is too long to analyse)."""
    if len(code) > MAX_STATIC_CHARS:
        return None
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    from pyflakes.checker import Checker

    try:
        found = Checker(tree, filename="<program>").messages
    except RecursionError:
        return None
    return sum(1 for message in found if type(message).__name__ in STATIC_ERRORS)


def execution_level(verdict: dict, config: GroundingConfig) -> tuple[float, bool, int, int]:
    """(level, ran, tests passed, tests) from a tests verdict run with every test."""
    tests = verdict.get("tests") or []
    passed = sum(1 for test in tests if test.get("status") == "passed")
    if verdict.get("status") == "passed" and tests and passed == len(tests):
        return config.passes_all, True, passed, len(tests)
    ran = bool(tests) and all(test.get("status") in ("passed", "failed") for test in tests)
    if not ran:
        return config.runtime_error, False, passed, len(tests)
    if passed == 0:
        return config.fails_tests, True, 0, len(tests)
    share = passed / len(tests)
    return config.passes_some + (config.passes_all - config.passes_some) * share, True, passed, len(tests)


def puzzle_level(verdict: dict, config: GroundingConfig) -> tuple[float, bool, int, int]:
    """A puzzle answer is one test: sat(answer) True, False (it ran: wrong), or it raised / timed out."""
    status = verdict.get("status")
    if status == "passed":
        return config.passes_all, True, 1, 1
    if status == "failed":
        return config.fails_tests, True, 0, 1
    return config.runtime_error, False, 0, 1


def reply_item(reply: str, kind: str, tests, setup: str = "", sat: str = "") -> dict:
    """What `score_programs` takes for a model's reply: the code found in it (the chat's own rules:
    the fenced block, the function the tests call and the names they use) and what checks it."""
    tests = list(tests or ())
    code = reply_code("puzzle" if kind == "puzzle" else "task", reply, entry_point_of(tests), tests) or ""
    return {"kind": kind, "code": code, "tests": tests, "setup": setup, "sat": sat}


def score_programs(items: list[dict], verify: Verify, config: GroundingConfig | None = None,
                   discriminator: Callable[[list[dict]], list[float]] | None = None) -> list[Reward]:
    """One reward per item, with one sandbox call for all of them: a task {code, tests, setup?}
    (MBPP's setup runs after the code, as its harness does) or a puzzle {kind: "puzzle", code, sat}
    (a P3 answer `sol`, right when sat(sol()) is True); code None or "" = the reply had none.
    `discriminator` maps the items to P(reference-like) in [0, 1]."""
    config = (config or GroundingConfig()).check()
    statics = [static_errors(item["code"]) if item.get("code") else None for item in items]
    jobs = [{**job_for(item.get("kind", "tests"), item["code"], tests=item.get("tests", ()), sat=item.get("sat", ""),
                       setup=item.get("setup", ""), job_id=str(index)), "timeout_s": config.timeout_s}
            for index, (item, found) in enumerate(zip(items, statics)) if found is not None]
    verdicts = {}
    for verdict in verify(jobs) if jobs else []:
        verdict = verdict if isinstance(verdict, dict) else verdict.as_dict()
        verdicts[int(verdict["id"])] = verdict
    scores = discriminator(items) if discriminator is not None and config.discriminator_weight else None
    rewards = []
    for index, (item, found) in enumerate(zip(items, statics)):
        judged = scores[index] if scores is not None else None
        bonus = config.discriminator_weight * (judged - 0.5) if judged is not None else 0.0
        if found is None:
            status = "no code" if not item.get("code") else "syntax error"
            rewards.append(Reward(config.syntax_error + bonus, False, 0, False, 0, len(item.get("tests") or [1]), status,
                                  config.syntax_error, judged))
            continue
        verdict = verdicts.get(index) or {"status": "error", "tests": []}
        if item.get("kind") == "puzzle":
            level, ran, passed, total = puzzle_level(verdict, config)
        else:
            level, ran, passed, total = execution_level(verdict, config)
        if verdict.get("status") == "error" and str(verdict.get("detail", "")).startswith("syntax error"):
            level, ran = config.syntax_error, False  # what the sandbox could not compile counts as unparsed
        penalised = max(level - config.static_penalty, config.syntax_error) if found else level
        rewards.append(Reward(round(penalised + bonus, 6), True, found, ran, passed, total, verdict.get("status", ""),
                              level, judged))
    return rewards
