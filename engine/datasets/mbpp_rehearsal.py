"""MBPP train tasks as training text, in two forms: the MBPP paper's own (the task, its asserts,
then `[BEGIN]` code `[DONE]`: what its authors fine-tuned on), and the chat form (the task asked as
the code chat and the `instruct` prompt ask it, answered with the function in one code block). A
round trained on puzzle solutions alone forgot how to answer code tasks (MBPP validation 5.6% ->
0.0%, docs/experiments.md); replaying the paper's form kept that form, but not the chat form (P3's
references control, rehearsing the paper's form only, answered 1 of 90 validation tasks in the chat
form, against the base's 9). Only the train split (601-974), less the tasks a test set holds too
(`trainable_mbpp`)."""
from __future__ import annotations

from pathlib import Path

from engine.datasets.held_out import trainable_mbpp
from engine.evaluate.suite.mbpp import clean_code, instruct_messages, paper_shot


def rehearsal_texts(data_dir: str | Path) -> list[tuple[int, str]]:
    """(task id, training text) for each trainable MBPP train task, in id order."""
    return [(task.task_id, paper_shot(task.text, task.tests, clean_code(task.code)))
            for task in trainable_mbpp(data_dir)]


def rehearsal_messages(data_dir: str | Path) -> list[tuple[int, tuple[dict, ...]]]:
    """(task id, chat messages) for the same tasks: the `instruct` prompt, and the reference as the
    reply, in one ```python block."""
    return [(task.task_id, (*instruct_messages(task.text, task.tests),
                            {"role": "assistant", "content": f"```python\n{clean_code(task.code)}\n```"}))
            for task in trainable_mbpp(data_dir)]
