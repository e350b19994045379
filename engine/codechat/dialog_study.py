"""The MBPP paper's dialog study, replayed: the tasks a model fails on its first attempt, then up to
four repair turns with a simulated person's feedback (engine/codechat/feedback.py), one arm per
feedback kind on the same failed tasks.

Each turn goes through the chat's own path: the task prompt and the repair prompt of
engine/codechat/prompts.py, the dialog history in the model's context, the reply's code taken and
tested by engine/codechat/checks.py in the sandbox. Replies are sampled per turn in one batch over
every task and arm. The study reads tasks and writes results; it never writes training data (its
default tasks are MBPP's test split).
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from engine.codechat import feedback, prompts
from engine.codechat.checks import entry_point_of, job_for, reply_code
from engine.config import Problems, StrictConfig
from engine.datasets.mbpp import MbppTask, load_mbpp
from engine.evaluate import paired
from engine.evaluate.pass_at_k import pass_at_k_interval
from engine.lm.generation import CancelToken, SamplingParams

Verify = Callable[[list[dict]], Iterable]
MAX_TURNS = 4


@dataclass(frozen=True)
class StudyConfig(StrictConfig):
    """What a study samples and checks with; recorded with its results."""

    KIND = "dialog study settings"

    kinds: tuple[str, ...] = feedback.KINDS
    turns: int = MAX_TURNS
    split: str = "test"  # MBPP split the tasks come from (the paper's: test, 11-510)
    limit: int = 0  # the first `limit` tasks of the split (0: all)
    max_tokens: int = 512
    temperature: float = 0.0  # the first attempt: greedy, so "the tasks it fails" is one set
    repair_temperature: float = 0.5  # the repairs are sampled (the paper's T): a greedy small model
    seed: int = 0  # tends to repeat its answer word for word, and `none` measures resampling
    timeout_s: float = 3.0
    hint_max_tokens: int = 96

    @classmethod
    def _convert(cls, data: dict) -> dict:
        if "kinds" in data:
            data["kinds"] = tuple(data["kinds"])
        return data

    def check(self) -> StudyConfig:
        problems = Problems()
        unknown = [kind for kind in self.kinds if kind not in feedback.KINDS]
        if not self.kinds or unknown:
            problems.add("kinds", f"kinds must be some of {', '.join(feedback.KINDS)}")
        if not 1 <= self.turns <= MAX_TURNS:
            problems.add("turns", f"turns must be between 1 and {MAX_TURNS}")
        if self.split not in ("test", "validation", "train", "prompt"):
            problems.add("split", "split must be test, validation, train or prompt")
        if self.limit < 0:
            problems.add("limit", "limit must be at least 0")
        if self.max_tokens < 1 or self.hint_max_tokens < 1:
            problems.add("max_tokens", "max_tokens must be at least 1")
        if not 0 <= self.temperature <= 2:
            problems.add("temperature", "temperature must be between 0 and 2")
        if not 0 <= self.repair_temperature <= 2:
            problems.add("repair_temperature", "repair_temperature must be between 0 and 2")
        if self.timeout_s <= 0:
            problems.add("timeout_s", "timeout_s must be above 0")
        problems.raise_any()
        return self

    def params(self, repair: bool = False) -> SamplingParams:
        return SamplingParams(max_new_tokens=self.max_tokens, seed=self.seed,
                              temperature=self.repair_temperature if repair else self.temperature)


def study_tasks(data_dir, split: str = "test", limit: int = 0) -> list[MbppTask]:
    tasks = sorted((t for t in load_mbpp(data_dir).values() if t.split == split), key=lambda t: t.task_id)
    return tasks[:limit or None]


def _job(task: MbppTask, code: str, job_id: str, timeout_s: float) -> dict:
    return {**job_for("task", code, tests=task.tests, setup=task.setup, job_id=job_id), "timeout_s": timeout_s}


def _attempt(task: MbppTask, reply: str, tokens: int) -> dict:
    return {"reply": reply, "tokens": tokens, "code": reply_code("task", reply, entry_point_of(task.tests), task.tests) or ""}


def _check(attempts: list[tuple[MbppTask, dict]], verify: Verify, timeout_s: float) -> None:
    """Fill each attempt's `verdict` and `status`, with one sandbox call for all of them."""
    jobs = [_job(task, attempt["code"], str(index), timeout_s)
            for index, (task, attempt) in enumerate(attempts) if attempt["code"]]
    found = {}
    for verdict in verify(jobs):
        verdict = verdict if isinstance(verdict, dict) else verdict.as_dict()
        found[int(verdict["id"])] = verdict
    for index, (_task, attempt) in enumerate(attempts):
        verdict = found.get(index) or {"status": "no code", "detail": "the reply has no code block to test",
                                       "tests": []}
        attempt["verdict"] = verdict
        attempt["status"] = verdict["status"]


def _history(task: MbppTask, turn0: dict, turns: list[dict]) -> list[dict]:
    """The chat the model sees: the task, its answers, and each feedback as the repair prompt."""
    messages = [{"role": "user", "content": prompts.task_prompt(task.text, task.tests)},
                {"role": "assistant", "content": turn0["reply"]}]
    for turn in turns:
        messages.append({"role": "user", "content": turn["prompt"]})
        if "reply" in turn:
            messages.append({"role": "assistant", "content": turn["reply"]})
    return messages


def _feedback_for(kind: str, task: MbppTask, last: dict, hints: dict) -> dict:
    if kind == "tests":
        return {"feedback": feedback.tests_feedback(last["verdict"], last["code"]), "rejected": ""}
    if kind == "hint":
        hint = hints[task.task_id]
        return {"feedback": hint.text, "rejected": hint.rejected, "hint_raw": hint.raw}
    return {"feedback": feedback.CONTROL, "rejected": ""}


def run_study(model, tasks: list[MbppTask], config: StudyConfig, verify: Verify, feedback_model=None,
              progress: Callable[[str], None] | None = None, cancel: CancelToken | None = None) -> dict:
    """Turn 0 on every task, then each feedback kind's repair turns on the failed ones.
    `feedback_model` writes the `hint` kind (needed only when that kind is studied)."""
    config = config.check()
    if "hint" in config.kinds and feedback_model is None:
        raise ValueError("the hint feedback needs a feedback model")
    started, tokens = time.perf_counter(), 0
    params = config.params()
    say = progress or (lambda text: None)

    outputs = model.sample_many([[{"role": "user", "content": prompts.task_prompt(t.text, t.tests)}] for t in tasks],
                                1, params, cancel)
    first = {}
    for task, completions in zip(tasks, outputs):
        first[task.task_id] = _attempt(task, completions[0].text, completions[0].tokens)
        tokens += completions[0].tokens
    _check([(task, first[task.task_id]) for task in tasks], verify, config.timeout_s)
    failed = [task for task in tasks if first[task.task_id]["status"] != "passed"]
    say(f"turn 0: {len(tasks) - len(failed)} of {len(tasks)} solved; {len(failed)} go to the repair turns")

    arms = {kind: {task.task_id: [] for task in failed} for kind in config.kinds}
    hint_rejections = {"code": 0, "empty": 0}
    for turn in range(1, config.turns + 1):
        if cancel is not None and cancel.cancelled:
            break
        open_ = [(kind, task) for kind in config.kinds for task in failed if not _solved(arms[kind][task.task_id])]
        if not open_:
            break
        hints = {}
        hinted = [task for kind, task in open_ if kind == "hint"]
        if hinted:
            results = feedback.write_hints(feedback_model, [
                {"task_text": task.text, "tests": task.tests, "code": _last(first, arms, "hint", task)["code"],
                 "verdict": _last(first, arms, "hint", task)["verdict"], "reference": task.code}
                for task in hinted], feedback.hint_params(config.hint_max_tokens, config.seed))
            hints = {task.task_id: result for task, result in zip(hinted, results)}
            for result in results:
                if result.rejected:
                    hint_rejections[result.rejected] += 1
        pending = []
        for kind, task in open_:
            last = _last(first, arms, kind, task)
            record = {"turn": turn, **_feedback_for(kind, task, last, hints)}
            record["prompt"] = prompts.repair_prompt(record["feedback"], last["verdict"], entry_point_of(task.tests))
            arms[kind][task.task_id].append(record)
            pending.append((kind, task, record))
        histories = [_history(task, first[task.task_id], arms[kind][task.task_id]) for kind, task, _ in pending]
        outputs = model.sample_many(histories, 1, config.params(repair=True), cancel)
        for (_kind, task, record), completions in zip(pending, outputs):
            record.update(_attempt(task, completions[0].text, completions[0].tokens))
            tokens += completions[0].tokens
        _check([(task, record) for _kind, task, record in pending], verify, config.timeout_s)
        say(f"turn {turn}: " + ", ".join(
            f"{kind} {sum(_solved(arms[kind][t.task_id]) for t in failed)}/{len(failed)}" for kind in config.kinds))

    return {
        "settings": config.as_dict(),
        "tasks": len(tasks),
        "turn0_solved": len(tasks) - len(failed),
        "failed": [task.task_id for task in failed],
        "summary": summarise(len(tasks), [t.task_id for t in failed], arms, config.turns),
        "hint_rejections": hint_rejections,
        "tokens": tokens,
        "seconds": round(time.perf_counter() - started, 1),
        "cancelled": bool(cancel is not None and cancel.cancelled),
        "transcripts": [_transcript(task, first[task.task_id], {k: arms[k].get(task.task_id) for k in config.kinds})
                        for task in tasks],
    }


def _solved(turns: list[dict]) -> bool:
    return any(turn.get("status") == "passed" for turn in turns)


def _last(first: dict, arms: dict, kind: str, task: MbppTask) -> dict:
    turns = arms[kind][task.task_id]
    return turns[-1] if turns else first[task.task_id]


def _transcript(task: MbppTask, turn0: dict, arms: dict) -> dict:
    return {"task_id": task.task_id, "text": task.text, "tests": task.tests, "turn0": turn0,
            "arms": {kind: turns for kind, turns in arms.items() if turns is not None}}


def first_success(turns: list[dict]) -> int | None:
    return next((turn["turn"] for turn in turns if turn.get("status") == "passed"), None)


def summarise(total: int, failed: list[int], arms: dict[str, dict[int, list[dict]]], turns: int) -> dict:
    """Per kind: failed tasks solved by each turn, the solved rate over all tasks per turn, the
    error-rate reduction at the last turn against turn 0 (a 95% bootstrap interval over tasks), the
    mean turn of first success, and the paired comparison with the `none` control."""
    turn0 = total - len(failed)
    out = {}
    for kind, by_task in arms.items():
        firsts = {task_id: first_success(by_task[task_id]) for task_id in failed}
        solved_by = [sum(1 for f in firsts.values() if f is not None and f <= t) for t in range(turns + 1)]
        rows = [(1, int(firsts[task_id] is not None)) for task_id in failed]
        interval = [round(x, 4) for x in pass_at_k_interval(rows, 1)] if rows else [0.0, 0.0]
        successes = [f for f in firsts.values() if f is not None]
        out[kind] = {
            "solved_by_turn": solved_by,
            "solved_rate_by_turn": [round((turn0 + s) / total, 4) if total else 0.0 for s in solved_by],
            "error_reduction": round(solved_by[-1] / len(failed), 4) if failed else 0.0,
            "error_reduction_interval": interval,
            "mean_first_success_turn": round(sum(successes) / len(successes), 2) if successes else None,
        }
    if "none" in arms and failed:
        control = [{"name": str(t), "n": 1, "c": int(first_success(arms["none"][t]) is not None)} for t in failed]
        for kind in arms:
            if kind == "none":
                continue
            rows = [{"name": str(t), "n": 1, "c": int(first_success(arms[kind][t]) is not None)} for t in failed]
            comparison = paired.compare(control, rows, k=1)
            out[kind]["against_none"] = {key: comparison[key] for key in ("difference", "interval", "sign_test_p")} | {
                "gained": len(comparison["gained"]), "lost": len(comparison["lost"])}
    return out


def table(result: dict) -> str:
    """The per-turn table a report prints."""
    summary, total = result["summary"], result["tasks"]
    turns = result["settings"]["turns"]
    head = "| feedback | " + " | ".join(f"turn {t}" for t in range(turns + 1)) + " | error reduction (95% CI) |"
    lines = [head, "|" + "---|" * (turns + 3)]
    for kind, row in summary.items():
        cells = " | ".join(f"{100 * rate:.1f}%" for rate in row["solved_rate_by_turn"])
        low, high = row["error_reduction_interval"]
        lines.append(f"| {kind} | {cells} | {100 * row['error_reduction']:.1f}% ({100 * low:.1f}–{100 * high:.1f}) |")
    lines.append(f"\n{result['turn0_solved']} of {total} solved at turn 0; {len(result['failed'])} in the study.")
    return "\n".join(lines)


def live_summary(total: int, failed: int, dialogs: dict[str, int | None], turns: int) -> dict:
    """The people's arm beside the simulated ones: each finished dialog (one person, one failed
    task; value: its turn of first success or None) is a unit, and its solved rate is put on the
    replay's scale (the turn-0 solved tasks, plus the failed ones at the dialogs' success rate)."""
    arm = {key: [] if first is None else [{"turn": first, "status": "passed"}] for key, first in dialogs.items()}
    row = summarise(len(arm), list(arm), {"live": arm}, turns)["live"]
    if arm and total:
        row["solved_rate_by_turn"] = [round((total - failed + failed * solved / len(arm)) / total, 4)
                                      for solved in row["solved_by_turn"]]
    return {**row, "dialogs": len(arm)}
