"""MBPP train tasks as training text in the MBPP paper's own format (the task, its asserts, then
`[BEGIN]` code `[DONE]`: what its authors fine-tuned on). A round trained on puzzle solutions alone
forgot how to answer code tasks (MBPP validation 5.6% -> 0.0%, docs/experiments.md); replaying
these beside the puzzles keeps that skill in the mix. Only the train split (601-974), less the
tasks a test set holds too (`trainable_mbpp`)."""
from __future__ import annotations

from pathlib import Path

from engine.datasets.held_out import trainable_mbpp
from engine.evaluate.suite.mbpp import clean_code, paper_shot


def rehearsal_texts(data_dir: str | Path) -> list[tuple[int, str]]:
    """(task id, training text) for each trainable MBPP train task, in id order."""
    return [(task.task_id, paper_shot(task.text, task.tests, clean_code(task.code)))
            for task in trainable_mbpp(data_dir)]
