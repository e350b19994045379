"""The puzzle-writing prompts, in three forms, and reading a puzzle back out of a completion.

- `completion`: the paper's (`gen.py`): training puzzles renamed `f1…fk`, without docstrings,
  shuffled, as many as fit the context minus the generation budget, then an open `def f{k+1}(`
  for the model to continue. No solutions and no English: "more puzzles like these".
- `pair`: the same, but each example is followed by its reference solution `g{i}` and
  `assert f{i}(g{i}())`, so the model writes a puzzle and a solution together; the solution is
  verified with the puzzle like any attempt.
- `chat`: the examples in one fenced block inside a chat turn that says what a puzzle is and
  asks for a new one: the form an instruct model was tuned to follow.

Examples are shown as their authors wrote them (`renamed_as_written`), not re-printed by
`ast.unparse`. Test and validation puzzles never reach a prompt (TestSplitLeak).
"""
from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from engine.lm.code_extraction import fenced_blocks
from engine.selfplay.p3 import training_safe
from engine.selfplay.puzzle_code import (
    TOP_LEVEL_DEF,
    answer_annotation,
    complete_function,
    puzzle_name,
    rename_function,
    renamed_as_written,
    typed_solution,
)

FORMS = ("completion", "pair", "chat")
HEADER = "from typing import List\n\n"
CHAT_EXAMPLES = 10  # a small model follows a short chat better than a full context of examples
CHAT_INSTRUCTION = (
    "You write Python programming puzzles. A puzzle is a function whose first parameter is the "
    "answer, annotated with its type (int, float, str, or List[...] of them); every other parameter "
    "has a default value. It returns True exactly when the answer is right. A good puzzle is easy to "
    "check and hard to solve by guessing.\n\nHere are some puzzles:\n\n```python\n{examples}```\n\n"
    "Write one new puzzle, different from these, in the same style. Reply with only its code in "
    "one ```python block.")


@dataclass(frozen=True)
class GenerationPrompt:
    text: str
    header: str  # the open `def f{k+1}(` the completions continue ("" for the chat form)
    examples: int  # how many puzzles made it in
    form: str = "completion"


def _solutions(puzzle) -> tuple[str, ...]:
    return tuple(getattr(puzzle, "solutions", ()) or ()) or ((puzzle.sol,) if getattr(puzzle, "sol", "") else ())


def _example(puzzle, index: int, form: str) -> str:
    text = renamed_as_written(puzzle.sat, f"f{index}")
    if form == "pair":
        g = typed_solution(_solutions(puzzle)[0], f"g{index}", answer_annotation(puzzle.sat),
                           calls={puzzle_name(puzzle.sat): f"f{index}"})
        text += f"\n\n{g}\n\nassert f{index}(g{index}())"
    return text + "\n\n"


def generation_prompt(puzzles: Sequence, count_tokens: Callable[[str], int], context_tokens: int = 2048,
                      generation_tokens: int = 200, rng: random.Random | None = None, form: str = "completion",
                      chat: Callable[[list[dict]], str] | None = None) -> GenerationPrompt:
    """`puzzles`: objects with `.sat` and `.split` (and `.solutions` or `.sol` for the pair form);
    a test-split one raises TestSplitLeak. `chat` turns messages into prompt text (the chat form)."""
    if form not in FORMS:
        raise ValueError(f"unknown prompt form {form!r}; choose one of {', '.join(FORMS)}")
    if form == "chat" and chat is None:
        raise ValueError("the chat form needs the model's chat template")
    training_safe(puzzles, "the generation prompt")
    order = [p for p in puzzles if form != "pair" or _solutions(p)]
    (rng or random.Random(0)).shuffle(order)
    wrap = (lambda body: chat([{"role": "user", "content": CHAT_INSTRUCTION.format(examples=body)}])) \
        if form == "chat" else (lambda body: HEADER + body)
    budget = context_tokens - generation_tokens - count_tokens(wrap("")) - 8  # 8: the open def
    parts: list[str] = []
    for puzzle in order:
        if form == "chat" and len(parts) == CHAT_EXAMPLES:
            break
        try:
            part = _example(puzzle, len(parts) + 1, form)
        except (SyntaxError, ValueError):
            continue
        cost = count_tokens(part)
        if cost > budget:
            if parts:
                break
            continue  # one huge puzzle must not leave the prompt empty
        parts.append(part)
        budget -= cost
    if not parts:
        raise ValueError("no example puzzle fits the context; raise context_tokens")
    if form == "chat":
        return GenerationPrompt(wrap("".join(parts)), "", len(parts), form)
    header = f"def f{len(parts) + 1}("
    return GenerationPrompt(wrap("".join(parts)) + header, header, len(parts), form)


def generated_function(prompt: GenerationPrompt, completion: str) -> str:
    """The one new puzzle function a completion wrote (trailing code stripped)."""
    if prompt.form != "chat":
        return complete_function(prompt.header, completion)
    code = next((block for block in fenced_blocks(completion) if TOP_LEVEL_DEF.search(block)), completion)
    match = TOP_LEVEL_DEF.search(code)
    if match is None:
        return code.strip() + "\n"  # prose: it fails the parse filter, counted as such
    return complete_function(match.group(0), code[match.end():])


def written_solution(prompt: GenerationPrompt, completion: str) -> str | None:
    """The pair form's solution `g{k+1}`, as a `def sol` that calls the puzzle as `sat` (the name
    the filters give it); None where the completion wrote none that parses."""
    if prompt.form != "pair":
        return None
    index = prompt.header[len("def f"):-1]
    opening = f"def g{index}("
    text = prompt.header + completion
    start = text.find("\n" + opening)
    if start < 0:
        return None
    source = complete_function(opening, text[start + 1 + len(opening):])
    try:
        return rename_function(source, "sol", drop_docstring=False, calls={f"f{index}": "sat"}) + "\n"
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


GENERATION_STOPS = ("\ndef ", "\nassert ", "\nclass ", "\nif __name__")
PAIR_STOPS = ("\nassert ", "\ndef f", "\nclass ", "\nif __name__")


def stops(form: str) -> tuple[str, ...]:
    """Where a completion of each form ends: the pair form must go on past the puzzle to write `g`;
    the chat form ends at the reply's end token."""
    return {"completion": GENERATION_STOPS, "pair": PAIR_STOPS, "chat": ()}[form]
