"""What the model is told in a code chat: a task with its tests (MBPP's wording), a P3 puzzle, and a
repair turn that carries the sandbox's results and the person's feedback."""
from __future__ import annotations

MAX_RESULT_LINES = 12


def task_prompt(problem: str, tests: list[str]) -> str:
    """The MBPP prompt, for a chat model: the asserts fix the function's name and signature."""
    return (f"You are an expert Python programmer, and here is your task: {problem.strip()} "
            "Your code should pass these tests:\n\n" + "\n".join(t.strip() for t in tests) +
            "\n\nAnswer with the complete function in one ```python code block.")


def puzzle_prompt(sat: str) -> str:
    return ("Here is a Python puzzle. `sat` returns True for a correct answer.\n\n"
            f"```python\n{sat.strip()}\n```\n\n"
            "Write a function `sol()` with no arguments that returns an answer `x` such that "
            "`sat(x)` is True. Answer with `sol` in one ```python code block.")


def task_message(problem: str, tests: list[str]) -> str:
    """What the page shows for the opening message of a task (markdown)."""
    return f"{problem.strip()}\n\n```python\n" + "\n".join(t.strip() for t in tests) + "\n```"


def puzzle_message(sat: str) -> str:
    return f"Solve this puzzle: find `x` with `sat(x) is True`.\n\n```python\n{sat.strip()}\n```"


def results_summary(verdict: dict | None) -> str:
    """The sandbox's verdict in words a model can use: one line per test, failures first."""
    if not verdict:
        return "The code was not tested."
    tests = verdict.get("tests") or []
    if not tests:
        status = verdict.get("status", "error")
        return "All tests passed." if status == "passed" else f"Result: {status}. {verdict.get('detail', '')}".strip()
    passed = sum(1 for t in tests if t.get("status") == "passed")
    lines = [f"{passed} of {len(tests)} tests passed."]
    ordered = sorted(tests, key=lambda t: t.get("status") == "passed")
    for test in ordered[:MAX_RESULT_LINES]:
        source = test.get("test", "").strip()
        detail = (test.get("detail") or "").removeprefix(source).strip() if test.get("status") != "passed" else ""
        lines.append(f"- {test.get('status', '?')}: {source}" + (f" {detail}" if detail.startswith("(")
                                                                  else f": {detail}" if detail else ""))
    return "\n".join(lines)


def repair_prompt(feedback: str, verdict: dict | None, entry_point: str = "") -> str:
    """The feedback turn: the previous code is the model's last reply in the history above it."""
    target = f"`{entry_point}`" if entry_point else "the code"
    return (f"I ran your code against the tests.\n{results_summary(verdict)}\n\n"
            f"Feedback: {feedback.strip()}\n\n"
            f"Fix {target} and answer with the complete corrected code in one ```python code block.")
