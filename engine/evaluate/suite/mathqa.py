"""MathQA-Python (Austin et al. 2021, section 5): a math word problem, answered by a straight-line
Python program that leaves its result in `answer`. The data is not bundled and has no release
that installs here: put the files at `<data>/mathqa-python/{train,test}.json` (a JSON list) or
`.jsonl`, one row per problem with `text`, `code` and `answer` (`task_id` optional: the row's
position otherwise), as the paper's release writes them.

Prompt `paper`: three worked problems from the train file (when there is one) in the MBPP prompt's
[BEGIN]/[DONE] form, then the problem. A program passes when, run in the sandbox, its `answer`
equals the reference answer within a relative 1e-4 (numbers; the programs compute in floats and
the reference was rounded when written) or exactly (anything else).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from engine.evaluate.suite.base import Benchmark, Defaults, Task
from engine.evaluate.suite.humaneval import read_jsonl
from engine.lm.generation import Prompt

DONE = "[DONE]"
SHOTS = 3
REL_TOL = 1e-4
INSTRUCTION = ("Write a Python program that solves this problem and stores the result in a variable named "
               "`answer`.")


def read_rows(path: Path) -> list[dict]:
    """Rows of a .json list or a .jsonl file, each checked for the fields the benchmark needs."""
    rows = json.loads(path.read_text(encoding="utf-8")) if path.suffix == ".json" else read_jsonl(path)
    if not isinstance(rows, list):
        raise ValueError(f"{path}: expected a JSON list of problems")
    for index, row in enumerate(rows):
        missing = [key for key in ("text", "code", "answer") if not isinstance(row, dict) or key not in row]
        if missing:
            raise ValueError(f"{path}: row {index + 1} lacks {', '.join(missing)}")
    return rows


def answer_test(answer) -> str:
    """The assert a program's `answer` must pass."""
    if isinstance(answer, (int, float)) and not isinstance(answer, bool) and math.isfinite(answer):
        return f"assert abs(answer - {answer!r}) <= {REL_TOL!r} * max(1.0, abs({answer!r}))"
    return f"assert answer == {answer!r}"


def block(text: str, code: str | None = None) -> str:
    head = f"You are an expert Python programmer, and here is your task: {text}\n{INSTRUCTION}\n[BEGIN]\n"
    return head if code is None else f"{head}{code.strip()}\n{DONE}"


class MathQaPython(Benchmark):
    name = "mathqa-python"
    title = "MathQA-Python"
    split = "test"
    prompts = ("paper",)
    defaults = Defaults(n=1, temperature=0.0, max_tokens=256, timeout_s=3.0)

    def __init__(self, data_dir=None, prompt: str = ""):
        super().__init__(data_dir, prompt)
        self._shots: list[Task] | None = None

    def path(self, split: str) -> Path | None:
        for suffix in (".json", ".jsonl"):
            path = self.data_dir / "mathqa-python" / f"{split}{suffix}"
            if path.is_file():
                return path
        return None

    def rows(self, split: str) -> list[Task]:
        path = self.path(split)
        if path is None:
            raise FileNotFoundError(f"MathQA-Python is not bundled: put {split}.json or {split}.jsonl (rows with "
                                    f"text, code, answer) in {self.data_dir / 'mathqa-python'}")
        return [Task(str(row.get("task_id", index)), {"text": row["text"].strip(), "code": row["code"],
                                                       "answer": row["answer"]})
                for index, row in enumerate(read_rows(path))]

    def load(self) -> list[Task]:
        return self.rows(self.split)

    def shots(self) -> list[Task]:
        if self._shots is None:
            self._shots = self.rows("train")[:SHOTS] if self.path("train") is not None else []
        return self._shots

    def prompt(self, task: Task, tokenizer) -> Prompt:
        shots = [block(s.data["text"], s.data["code"]) for s in self.shots()]
        return "\n".join([*shots, block(task.data["text"])])

    def stops(self) -> tuple[str, ...]:
        return (DONE,)

    def program(self, task: Task, text: str, given: Prompt) -> str | None:
        code = text.split(DONE)[0].strip()
        return code + "\n" if code else None

    def checks(self, task: Task, program: str, timeout_s: float) -> dict[str, dict]:
        return {"answer": {"kind": "tests", "code": program, "tests": [answer_test(task.data["answer"])]}}

    def reference(self, task: Task) -> str | None:
        return task.data["code"].strip() + "\n"
