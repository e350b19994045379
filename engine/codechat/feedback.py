"""A simulated person's feedback on a failed program, for the replayed dialog study (MBPP paper §
human feedback): three kinds that can be compared on the same tasks.

- `tests`: what a person reading the failing test would say, in words: which call, what came
  back, what was expected (no code beyond the call itself);
- `hint`: one sentence about the bug from a feedback model that sees the task, the code, the
  results and the reference solution, and is told never to write code; a reply that carries code
  (a code block, or a line of the reference) is rejected, counted, and the turn gets the control's
  words instead;
- `none`: "that's wrong, try again", the control that separates feedback from resampling.
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from engine.codechat.prompts import results_summary
from engine.lm.generation import SamplingParams
from engine.sandbox.verdict import short

KINDS = ("tests", "hint", "none")
CONTROL = "That's wrong, try again."
NO_CODE = "I could not find the function in your answer. Write the whole function in one code block."
MIN_LEAK_CHARS = 12  # a reference line this long (spaces removed) appearing in a hint is a leak
HINT_MAX_CHARS = 400

HINT_INSTRUCTION = (
    "You are helping a student fix a Python function. You see the task, the student's code, the "
    "test results and a correct reference solution. In ONE short sentence of plain English, tell the "
    "student what is wrong with their code or what they misunderstood. Never write code, never quote "
    "the reference solution, and do not give the fixed function.")


def _failing_tests(verdict: dict) -> list[dict]:
    return [t for t in (verdict or {}).get("tests") or [] if t.get("status") != "passed"]


def _split_assert(source: str) -> tuple[str, str] | None:
    """`assert CALL == EXPECTED` → (CALL, EXPECTED) as written; None for any other form."""
    try:
        node = ast.parse(source.strip()).body[0]
    except (SyntaxError, IndexError, ValueError, RecursionError):
        return None
    if not isinstance(node, ast.Assert) or not isinstance(node.test, ast.Compare):
        return None
    compare = node.test
    if len(compare.ops) != 1 or not isinstance(compare.ops[0], ast.Eq):
        return None
    return ast.get_source_segment(source.strip(), compare.left), ast.get_source_segment(source.strip(),
                                                                                         compare.comparators[0])


def _got(detail: str) -> str | None:
    """The value the sandbox reported for a failed comparison ("... (got 3)")."""
    found = re.search(r"\(got (.*)\)\s*$", detail or "", re.S)
    return found.group(1) if found else None


def tests_feedback(verdict: dict | None, code: str | None) -> str:
    """What a person reading the first failing test would say."""
    if not code:
        return NO_CODE
    verdict = verdict or {}
    failing = _failing_tests(verdict)
    if not failing:
        detail = short(verdict.get("detail") or "", 200)
        if verdict.get("status") == "timeout":
            return "Your function does not finish: it runs too long, probably an endless loop."
        return f"Your code does not run: {detail}" if detail else "Your code does not run."
    test = failing[0]
    source, detail = test.get("test", ""), test.get("detail", "")
    parts = _split_assert(source)
    if test.get("status") == "timeout":
        return f"On `{parts[0] if parts else source}` your function runs too long; it never returns."
    if parts is None:
        return f"This test fails: `{short(source, 200)}`" + (f" ({short(detail, 160)})." if detail else ".")
    call, expected = parts
    got = _got(detail)
    if test.get("status") == "failed" and got is not None:
        return f"When I call `{call}`, your function returns {got}, but it should return {short(expected, 160)}."
    if test.get("status") in ("error", "memory"):
        return f"When I call `{call}`, it fails with {short(detail, 200)}; it should return {short(expected, 160)}."
    return f"`{call}` should return {short(expected, 160)}, but the test fails ({short(detail, 160)})."


def hint_prompt(task_text: str, tests: list[str], code: str | None, verdict: dict | None, reference: str) -> list[dict]:
    """What the feedback model is given: everything a helpful person would see."""
    return [{"role": "user", "content": (
        f"{HINT_INSTRUCTION}\n\nTask: {task_text.strip()}\nTests:\n" + "\n".join(tests) +
        f"\n\nStudent's code:\n```python\n{(code or '(no code)').strip()}\n```\n\n"
        f"Test results:\n{results_summary(verdict)}\n\n"
        f"Reference solution (do not reveal it):\n```python\n{reference.strip()}\n```\n\n"
        "Your one-sentence feedback, without code:")}]


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def leaks_code(reply: str, reference: str) -> bool:
    """A hint that shows code: a fenced block, or any reference line of ≥ MIN_LEAK_CHARS characters
    (spaces ignored) inside it."""
    if "```" in reply:
        return True
    squashed = _squash(reply)
    for line in reference.splitlines():
        piece = _squash(line)
        if len(piece) >= MIN_LEAK_CHARS and not piece.startswith("def") and piece in squashed:
            return True
    return False


def clean_hint(reply: str) -> str:
    """The reply's first paragraph, as one line, capped."""
    text = reply.strip().split("\n\n")[0].strip()
    for prefix in ("Feedback:", "feedback:"):
        text = text.removeprefix(prefix).strip()
    return short(" ".join(text.split()), HINT_MAX_CHARS)


@dataclass
class HintResult:
    text: str  # what the student model is told
    rejected: str  # "" (used), "code" (it showed code) or "empty"; a rejected hint is replaced by CONTROL
    raw: str  # the feedback model's whole reply, kept for the transcript


def hint_params(max_tokens: int = 96, seed: int = 0) -> SamplingParams:
    return SamplingParams(max_new_tokens=max_tokens, temperature=0.0, seed=seed)


def write_hints(model, requests: list[dict], params: SamplingParams | None = None) -> list[HintResult]:
    """One hint per request ({task_text, tests, code, verdict, reference}), sampled in one batch."""
    if not requests:
        return []
    prompts = [hint_prompt(r["task_text"], r["tests"], r["code"], r["verdict"], r["reference"]) for r in requests]
    outputs = model.sample_many(prompts, 1, params or hint_params())
    results = []
    for request, completions in zip(requests, outputs):
        raw = completions[0].text if completions else ""
        text = clean_hint(raw)
        rejected = "code" if leaks_code(raw, request["reference"]) else "" if text else "empty"
        results.append(HintResult(CONTROL if rejected else text, rejected, raw))
    return results
