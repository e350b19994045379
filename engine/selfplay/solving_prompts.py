"""How a puzzle is put to a model to solve, one class per prompt style, and how a solution is cut
out of what the model wrote. Every attempt records the style that produced it.

- `completion`: the paper's prompt (`solve.py`): worked examples `def f1…` / `def g1…` /
  `assert f1(g1())`, then the target renamed `f{N}` and an open `def g{N}(<its defaults>):`; the
  completion is cut at the first non-indented line.
- `chat`: for instruct models: an instruction, the puzzle in a code block, "write g"; the reply's
  code block that defines `g` is the solution.
- `chat-prefill`: the same instruction, with the assistant's answer already opened as a code
  block starting `def g(...):`, so a small instruct model writes code rather than prose.
- `paper-prefix`: the paper's own few-shot prefix (`p3/iclr2023/train_prefix.txt` in the benchmark
  data: five `def f` / `def g` / `assert f(g())` examples), then the target as `def f` and an open
  `def g(<its defaults>):`, cut like `completion`.

As P3's judge does, a solution may call the puzzle by the name the prompt gave it (`f6`, `f`): that
name is mapped back to the puzzle's own, which the sandbox defines beside the solution.
"""
from __future__ import annotations

import ast
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from engine.lm.code_extraction import extract_code
from engine.lm.generation import Prompt, SamplingParams
from engine.selfplay.puzzle_code import (
    answer_annotation,
    complete_function,
    extra_parameters,
    parse,
    puzzle_name,
    rename_function,
    typed_solution,
    unparse,
)

# Worked examples written for this project, in the shape of the paper's train_prefix.txt.
EXAMPLES = (
    ("def f(s: str):\n    return s + s[::-1] == 'abccba'",
     "def g():\n    return 'abc'"),
    ("def f(nums: List[int]):\n    return len(nums) == 3 and sum(nums) == 30 and nums[0] < nums[1] < nums[2]",
     "def g():\n    return [9, 10, 11]"),
    ("def f(n: int, base=7):\n    return n % base == 3 and n > 1000",
     "def g(base=7):\n    return 1000 + (3 - 1000) % base"),
    ("def f(words: List[str]):\n    return len(words) == 5 and all(w.startswith('z') and len(w) == 4 for w in words)"
     " and len(set(words)) == 5",
     "def g():\n    return ['z' + chr(97 + i) * 3 for i in range(5)]"),
    ("def f(x: float):\n    return abs(x * x - 17) < 1e-6",
     "def g():\n    return 17 ** 0.5"),
)
STYLES = ("completion", "chat", "chat-prefill", "paper-prefix")
PAPER_PREFIX = Path("p3") / "iclr2023" / "train_prefix.txt"  # in the benchmark data folder
# Where an answer is opened for the model, its body's indentation is opened too: a small model
# left at the end of `def g():` often starts a new top-level line, and the function ends empty.
# With `align` (the model's tokenizer, engine.lm.prompt_tokens.token_aligned) the prompt ends at
# the token boundary the model would write there, and gives it back any whitespace after it.
BODY = "\n    "
INSTRUCTION = ("You solve Python programming puzzles. A puzzle is a function `f` whose first argument is "
               "the answer; it is solved by any answer for which `f` returns True. Write a function `g` "
               "that returns such an answer. `g` takes the same extra arguments as `f`, with the same "
               "defaults.")


def _numbered(index: int, puzzle: str, solution: str | None = None) -> str:
    text = rename_function(puzzle, f"f{index}", drop_docstring=True)
    if solution is not None:
        text += "\n\n" + typed_solution(solution, f"g{index}", answer_annotation(puzzle)) \
            + f"\n\nassert f{index}(g{index}())\n\n"
    return text


def completion_prefix() -> str:
    return "from typing import List\n\n" + "".join(_numbered(i + 1, f, g) for i, (f, g) in enumerate(EXAMPLES))


def _solution_header(sat: str, name: str = "g") -> str:
    """`def g(<f's extra parameters>) -> <the answer's type>:`. The type is in `f`'s signature too,
    but a small model told it where it writes the answer gets the type wrong less often (80 train
    puzzles × 4 samples, the default model: 84 attempts failed on a type, against 110)."""
    answer_type = answer_annotation(sat)
    return f"def {name}({extra_parameters(sat)})" + (f" -> {answer_type}:" if answer_type else ":")


def as_sol(function_source: str, sat: str | None = None, called_as: str = "") -> str | None:
    """The solution as `def sol`; with `sat`, calls of the puzzle by the prompt's name (`called_as`)
    go to the puzzle's own name, as P3's judge maps them."""
    try:
        calls = {called_as: puzzle_name(sat)} if sat and called_as else None
        return rename_function(function_source, "sol", drop_docstring=False, calls=calls) + "\n"
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


Align = Callable[[str], str]


def _opened(context: str, opening: str, align: Align | None) -> tuple[str, str]:
    """The prompt `context + opening`, cut to a token boundary by `align`, and what of `opening`
    it still ends with (the model's text continues that). Only the body's opened whitespace is
    ever given back."""
    full = context + opening
    cut = len(full) - len(align(full)) if align else 0
    if not 0 < cut <= len(BODY) or full[-cut:].strip():
        return full, opening
    return full[:-cut], opening[:-cut]


class _OpenedAnswer:
    """A style whose prompt opens the answer for the model. The prompt, and what of the opening it
    ends with, are worked out once per puzzle: aligning runs the tokenizer over the whole prompt,
    and every attempt's solution needs the opening back."""
    name = ""
    stops: tuple[str, ...] = ()
    called_as = "f"  # what the prompt calls the puzzle

    def __init__(self, align: Align | None = None):
        self.align = align
        self._parts_by_sat: dict[str, tuple[str, str]] = {}

    def _context_and_opening(self, sat: str) -> tuple[str, str]:
        raise NotImplementedError

    def _answer(self, text: str) -> str:
        """The part of the model's text that continues the opened answer."""
        return text

    def _parts(self, sat: str) -> tuple[str, str]:
        if sat not in self._parts_by_sat:
            self._parts_by_sat[sat] = _opened(*self._context_and_opening(sat), self.align)
        return self._parts_by_sat[sat]

    def prompt(self, sat: str) -> Prompt:
        return self._parts(sat)[0]

    def solution(self, sat: str, text: str) -> str | None:
        return as_sol(complete_function(self._parts(sat)[1], self._answer(text)), sat, self.called_as)


class CompletionStyle(_OpenedAnswer):
    name = "completion"
    stops = ("\nassert", "\ndef ", "\nclass ", "\nif __name__", "\nprint(")
    called_as = f"f{len(EXAMPLES) + 1}"

    def _context_and_opening(self, sat: str) -> tuple[str, str]:
        index = len(EXAMPLES) + 1
        return completion_prefix() + _numbered(index, sat) + "\n\n", _solution_header(sat, f"g{index}") + BODY


def _chat_request(sat: str) -> str:
    examples = "\n\n".join(f"```python\n{f}\n\n{g}\n\nassert f(g())\n```" for f, g in EXAMPLES[:2])
    puzzle = rename_function(sat, "f")
    return (f"{INSTRUCTION}\n\nExamples:\n\n{examples}\n\nNow solve this puzzle:\n\n```python\n{puzzle}\n```\n\n"
            f"Answer with `{_solution_header(sat)}` in one ```python code block.")


class ChatStyle:
    name = "chat"
    stops = ()

    def prompt(self, sat: str) -> Prompt:
        return [{"role": "user", "content": _chat_request(sat)}]

    def solution(self, sat: str, text: str) -> str | None:
        code = extract_code(text, "g")
        function = _function_named(code, "g") if code else None
        return as_sol(function, sat, "f") if function else None


class ChatPrefillStyle(_OpenedAnswer):
    """The chat prompt rendered as text (the tokenizer's template) with the answer already begun."""
    name = "chat-prefill"
    stops = ("```",)

    def __init__(self, render_chat: Callable[[list[dict]], str], align: Align | None = None):
        super().__init__(align)
        self.render_chat = render_chat

    def _context_and_opening(self, sat: str) -> tuple[str, str]:
        return self.render_chat(ChatStyle().prompt(sat)) + "```python\n", _solution_header(sat) + BODY

    def _answer(self, text: str) -> str:
        return text.split("```")[0]


class PaperPrefixStyle(_OpenedAnswer):
    """The paper's prompt with its own prefix file (read once from the benchmark data)."""
    name = "paper-prefix"
    stops = CompletionStyle.stops

    def __init__(self, prefix: str, align: Align | None = None):
        super().__init__(align)
        self.prefix = prefix.rstrip() + "\n\n"

    def _context_and_opening(self, sat: str) -> tuple[str, str]:
        return self.prefix + rename_function(sat, "f") + "\n\n", _solution_header(sat) + BODY


def paper_prefix(data_folder: str | Path | None = None) -> str:
    """The text of P3's `train_prefix.txt` from the benchmark data (AUTODIDACT_BENCHMARK_DATA, else
    `../shared/data` beside the project); FileNotFoundError says where it looked."""
    folder = Path(data_folder or os.environ.get("AUTODIDACT_BENCHMARK_DATA")
                  or Path(__file__).resolve().parents[2].parent / "shared" / "data")
    path = folder / PAPER_PREFIX
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"the paper-prefix style needs P3's train_prefix.txt: not found at {path}") from None


def _function_named(code: str, name: str) -> str | None:
    """The source of the top-level function `name` in `code` (helpers it needs come along)."""
    try:
        tree = parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    functions = [node for node in tree.body if isinstance(node, ast.FunctionDef)]
    target = next((f for f in functions if f.name == name), None)
    if target is None:
        return None
    helpers = [f for f in functions if f.name not in (name, "f", "sat")]
    imports = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
    if not helpers and not imports:
        return unparse(target)
    # A solution with helpers: nest them inside g, so g stays one self-contained function.
    target.body = [*imports, *helpers, *target.body]
    return unparse(target)


def solving_style(name: str, render_chat: Callable[[list[dict]], str] | None = None, align: Align | None = None):
    if name == "completion":
        return CompletionStyle(align)
    if name == "chat":
        return ChatStyle()
    if name == "paper-prefix":
        return PaperPrefixStyle(paper_prefix(), align)
    if name == "chat-prefill":
        if render_chat is None:
            raise ValueError("the chat-prefill style needs the model's chat template")
        return ChatPrefillStyle(render_chat, align)
    raise ValueError(f"unknown prompt style {name!r}; choose one of {', '.join(STYLES)}")


def style_params(style, base: SamplingParams) -> SamplingParams:
    return replace(base, stop=tuple(dict.fromkeys((*base.stop, *style.stops))))

