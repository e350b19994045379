"""Which prompt style a model solves puzzles best with, measured on training puzzles.

A small instruct model given the paper's completion prompt mostly writes prose; a base model
given a chat prompt may ignore it. So the style is chosen per model by solve rate, not assumed.
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace

from engine.selfplay.p3 import training_safe
from engine.selfplay.pipeline import SelfPlayConfig, Verify, solve, verify_attempts
from engine.selfplay.solving_prompts import STYLES


def measure_styles(model, puzzles: Sequence, verify: Verify, config: SelfPlayConfig,
                   styles: Sequence[str] = STYLES) -> dict[str, dict]:
    """For each style: puzzles solved (at least one verified attempt) and attempts passed, with
    `config.attempts` samples per puzzle. `puzzles` have `.sat` and `.split` (test split raises)."""
    training_safe(puzzles, "the prompt-style measurement")
    sats = [p.sat for p in puzzles]
    results = {}
    for style in styles:
        started = time.perf_counter()
        attempts, timing = solve(model, sats, replace(config, style=style), batch=0)
        verify_attempts(sats, attempts, verify, config.verify_timeout_s)
        solved = sum(any(a.get("status") == "passed" for a in tries) for tries in attempts)
        passed = sum(a.get("status") == "passed" for tries in attempts for a in tries)
        extracted = sum(a["solution"] is not None for tries in attempts for a in tries)
        results[style] = {"puzzles": len(sats), "attempts": len(sats) * config.attempts, "solved": solved,
                          "passed": passed, "with_code": extracted, "solve_rate": solved / len(sats) if sats else 0.0,
                          "tokens_per_s": round(timing.tokens_per_s, 1),
                          "seconds": round(time.perf_counter() - started, 1)}
    return results


def best_style(results: dict[str, dict]) -> str:
    """Most puzzles solved; then most attempts passed; then most attempts with usable code (a style
    that yields no code cannot improve with training); ties go to the earlier style in STYLES."""
    order = {style: i for i, style in enumerate(STYLES)}
    return max(results, key=lambda s: (results[s]["solved"], results[s]["passed"], results[s]["with_code"],
                                       -order.get(s, 99)))
