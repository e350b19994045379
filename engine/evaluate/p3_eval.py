"""P3 evaluation: n samples per held-out puzzle with the solving prompt, verified in the sandbox,
reported as unbiased pass@k. The set is the 228 test puzzles (one instance per test problem, as
the paper evaluates) or a named, seeded subset of them, so two rounds compare like with like."""
from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from engine.config import Problems, StrictConfig, check_sampling
from engine.evaluate.pass_at_k import mean_pass_at_k, report_ks
from engine.lm.generation import CancelToken
from engine.lm.throughput import tokens_per_s
from engine.selfplay.p3 import P3Puzzle, load_p3, one_per_problem
from engine.selfplay.pipeline import SelfPlayConfig, Verify, solve, verify_attempts
from engine.selfplay.solving_prompts import STYLES


@dataclass(frozen=True)
class P3EvalConfig(StrictConfig):
    KIND = "evaluation settings"

    samples: int = 10  # n per puzzle
    temperature: float = 0.8
    max_tokens: int = 150  # the paper's budget per attempt
    style: str = "completion"
    top_k: int = 50  # the paper sampled with transformers' generate defaults
    top_p: float = 1.0
    subset: int = 0  # 0: every puzzle of the split; else this many, drawn with `seed`
    split: str = "test"  # "validation" (P3 train problems held out): what the round gate selects on
    seed: int = 0
    timeout_s: float = 1.0  # the paper's judge timeout
    ks: tuple[int, ...] = (1, 10, 100)
    max_batch_rows: int = 64

    def __post_init__(self):
        problems = Problems()
        for name in ("samples", "max_tokens"):
            if getattr(self, name) < 1:
                problems.add(name, f"{name} must be at least 1")
        if self.subset < 0:
            problems.add("subset", "subset must be at least 0")
        if not 0 <= self.temperature <= 2:
            problems.add("temperature", "temperature must be between 0 and 2")
        if self.split not in ("test", "validation"):
            problems.add("split", "split must be test or validation")
        if self.style not in STYLES:
            problems.add("style", f"unknown prompt style {self.style!r}; choose one of {', '.join(STYLES)}")
        check_sampling(problems, self.top_k, self.top_p)
        problems.raise_any()

    @classmethod
    def _convert(cls, data: dict) -> dict:
        if "ks" in data:
            data["ks"] = tuple(int(k) for k in data["ks"])
        return data


@dataclass
class P3EvalResult:
    dataset: str  # the named set, e.g. "p3-test-228" or "p3-test-50-seed0"
    config: dict
    pass_at_k: dict[str, float]  # {"1": 0.013, "10": 0.044}
    solved: int  # puzzles with at least one verified sample
    puzzles: int
    per_puzzle: list[dict] = field(default_factory=list)  # name, n, c, one verified solution
    tokens: int = 0
    seconds: float = 0.0

    @property
    def tokens_per_s(self) -> float:
        return tokens_per_s(self.tokens, self.seconds)

    def as_dict(self) -> dict:
        return {**asdict(self), "tokens_per_s": self.tokens_per_s}


def held_out_puzzles(folder: str | Path, subset: int = 0, seed: int = 0,
                     split: str = "test") -> tuple[str, list[P3Puzzle]]:
    """The `split` puzzles (test or validation; one per problem, in file order) or a seeded subset,
    with the set's name."""
    tests = [p for p in one_per_problem(load_p3(folder)) if p.split == split]
    if not tests:
        raise ValueError(f"no {split}-split puzzles in {folder}")
    if not subset or subset >= len(tests):
        return f"p3-{split}-{len(tests)}", tests
    chosen = sorted(random.Random(seed).sample(range(len(tests)), subset))
    return f"p3-{split}-{subset}-seed{seed}", [tests[i] for i in chosen]


def evaluate_p3(model, puzzles: Sequence[P3Puzzle], config: P3EvalConfig, verify: Verify, dataset: str = "",
                progress: Callable[[int, int], None] | None = None, cancel: CancelToken | None = None,
                chunk: int = 8) -> P3EvalResult:
    """Sample, verify and score `puzzles`; `progress(done, total)` after every chunk of puzzles."""
    solving = SelfPlayConfig(attempts=config.samples, solving_temperature=config.temperature,
                             solving_tokens=config.max_tokens, style=config.style, seed=config.seed,
                             top_k=config.top_k, top_p=config.top_p,
                             max_batch_rows=max(config.max_batch_rows, config.samples))
    started = time.perf_counter()
    per_puzzle, tokens = [], 0
    for start in range(0, len(puzzles), chunk):
        group = puzzles[start:start + chunk]
        sats = [p.sat for p in group]
        attempts, timing = solve(model, sats, solving, batch=start, cancel=cancel)
        verify_attempts(sats, attempts, verify, config.timeout_s)
        tokens += timing.tokens
        for puzzle, tries in zip(group, attempts):
            passed = [a["solution"] for a in tries if a.get("status") == "passed"]
            per_puzzle.append({"name": puzzle.name, "n": len(tries), "c": len(passed),
                               "solution": min(passed, key=len) if passed else None})
        if progress:
            progress(len(per_puzzle), len(puzzles))
        if cancel is not None and cancel.cancelled:
            break
    counts = [(row["n"], row["c"]) for row in per_puzzle]
    scores = {str(k): round(mean_pass_at_k(counts, k), 4) for k in report_ks(config.samples, config.ks)} \
        if counts else {}
    return P3EvalResult(dataset or f"p3-{len(puzzles)}", config.as_dict(), scores,
                        sum(1 for row in per_puzzle if row["c"]), len(per_puzzle), per_puzzle, tokens,
                        round(time.perf_counter() - started, 1))
