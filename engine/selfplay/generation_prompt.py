"""The puzzle-writing prompt of the paper (`gen.py`): training puzzles renamed `f1…fk`, without
docstrings, shuffled, as many as fit the context minus the generation budget, then an open
`def f{k+1}(` for the model to continue. No solutions and no English: "more puzzles like these"."""
from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from engine.selfplay.p3 import training_safe
from engine.selfplay.puzzle_code import complete_function, rename_function

HEADER = "from typing import List\n\n"


@dataclass(frozen=True)
class GenerationPrompt:
    text: str
    header: str  # the open `def f{k+1}(` the completions continue
    examples: int  # how many puzzles made it in


def generation_prompt(puzzles: Sequence, count_tokens: Callable[[str], int], context_tokens: int = 2048,
                      generation_tokens: int = 200, rng: random.Random | None = None) -> GenerationPrompt:
    """`puzzles`: objects with `.sat` and `.split`; a test-split one raises TestSplitLeak."""
    training_safe(puzzles, "the generation prompt")
    order = list(puzzles)
    (rng or random.Random(0)).shuffle(order)
    budget = context_tokens - generation_tokens - count_tokens(HEADER) - 8  # 8: the open def
    parts: list[str] = []
    for puzzle in order:
        part = rename_function(puzzle.sat, f"f{len(parts) + 1}") + "\n\n"
        cost = count_tokens(part)
        if cost > budget:
            if parts:
                break
            continue  # one huge puzzle must not leave the prompt empty
        parts.append(part)
        budget -= cost
    if not parts:
        raise ValueError("no example puzzle fits the context; raise context_tokens")
    header = f"def f{len(parts) + 1}("
    return GenerationPrompt(HEADER + "".join(parts) + header, header, len(parts))


def generated_function(prompt: GenerationPrompt, completion: str) -> str:
    """The one new function a completion wrote (trailing code stripped)."""
    return complete_function(prompt.header, completion)


GENERATION_STOPS = ("\ndef ", "\nassert ", "\nclass ", "\nif __name__")
