"""A model's own passing answers to MBPP train tasks, in the chat form, kept as rehearsal data.

A round trained on puzzle solutions forgets the chat form: its answers stop being a fenced function
and the chat-form code check fails (docs/experiments.md). Rehearsing MBPP's reference solutions in
the chat form kept the fence but taught the references' terse style, and the code got worse.
Rehearsing the model's own answers instead (self-distillation: Yang et al. 2024, "Self-Distillation
Bridges Distribution Gap in Language Model Fine-Tuning") asks training to keep the style the model
already has. Only answers whose code passes the task's asserts in the sandbox are kept, as for
every other training example, and only answers that ended by themselves (not cut at the token limit).

The input is a suite run of `mbpp-train` with the `instruct` prompt, e.g.
`python -m engine.evaluate run mbpp-train --prompt instruct --n 4 --temperature 0.8 --out run.json`.
"""
from __future__ import annotations

from engine.evaluate.suite.mbpp import MbppTrain, instruct_messages


def kept_replies(result: dict, data_dir=None, per_task: int = 2, max_reply_tokens: int = 0) -> list[dict]:
    """The passing, distinct answers of a run (at most `per_task` a task, in the order drawn; none
    longer than `max_reply_tokens` when it is set), each as chat messages with its task and verdict."""
    benchmark = result.get("benchmark") or {}
    if benchmark.get("benchmark") != MbppTrain.name or benchmark.get("prompt") != "instruct":
        raise ValueError(f"own replies come from a run of {MbppTrain.name} with the instruct prompt, not "
                         f"{benchmark.get('benchmark')!r} with {benchmark.get('prompt')!r}")
    tasks = {task.task_id: task for task in MbppTrain(data_dir or benchmark.get("data") or None, "instruct").tasks()}
    kept = []
    for row in result.get("rows") or []:
        task = tasks.get(str(row["task_id"]))
        if task is None:  # a task no longer trainable (a test set took it) is not kept
            continue
        seen: set[str] = set()
        for sample in row["samples"]:
            program = sample.get("program") or ""
            key = " ".join(program.split())
            if (sample.get("status") != "passed" or sample.get("finish") == "length" or key in seen
                    or (max_reply_tokens and sample.get("tokens", 0) > max_reply_tokens)):
                continue
            seen.add(key)
            kept.append({"task_id": int(task.task_id),
                         "messages": [*instruct_messages(task.data["text"], task.data["tests"]),
                                      {"role": "assistant", "content": sample["text"]}],
                         "code": program, "verdict": {"status": sample["status"], "checks": sample.get("checks", {})}})
            if len(seen) == per_task:
                break
    return kept
