"""MBPP tasks (Austin et al. 2021) from `mbpp.jsonl`, each with its official split.

Task ids 1-10 are the few-shot prompt split, 11-510 test, 511-600 validation, 601-974 train.
Test and validation tasks are for evaluation only (validation is what gates select on):
`usable_for_training` says which ones may end up in data.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

SPLITS = ((1, 10, "prompt"), (11, 510, "test"), (511, 600, "validation"), (601, 974, "train"))


def split_of(task_id: int) -> str:
    for low, high, name in SPLITS:
        if low <= task_id <= high:
            return name
    return "other"


@dataclass(frozen=True)
class MbppTask:
    task_id: int
    text: str
    code: str
    tests: list[str]
    setup: str
    split: str

    @property
    def usable_for_training(self) -> bool:
        return self.split not in ("test", "validation")


def load_mbpp(data_dir: str | Path) -> dict[int, MbppTask]:
    """Every task of `<data_dir>/mbpp/mbpp.jsonl` by id; FileNotFoundError says where it looked."""
    path = Path(data_dir) / "mbpp" / "mbpp.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"MBPP not found at {path} (set AUTODIDACT_BENCHMARK_DATA to the data folder)")
    tasks = {}
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if not line.strip():
                continue
            row = json.loads(line)
            task_id = int(row["task_id"])
            tasks[task_id] = MbppTask(task_id, row["text"].strip(), row["code"], list(row["test_list"]),
                                      row.get("test_setup_code") or "", split_of(task_id))
    return tasks


def mbpp_validation(data_dir: str | Path) -> list[MbppTask]:
    """The validation split (511-600) by id: what early stopping and gates select on, never data."""
    return [task for _, task in sorted(load_mbpp(data_dir).items()) if task.split == "validation"]
