"""Training tasks that the sandbox can check: an MBPP-style task with asserts, or a P3 puzzle. RL
rounds sample answers to them and distillation rounds keep the teacher traces that solve them."""
from __future__ import annotations

from dataclasses import dataclass

from engine.codechat.prompts import puzzle_prompt, task_prompt


@dataclass(frozen=True)
class CodeTask:
    """A task with tests (MBPP-style asserts) or a P3 puzzle: what a model is asked and what checks
    its answer (the RL reward, a teacher trace's rejection sampling)."""

    task_id: str
    text: str
    tests: list[str]
    setup: str = ""
    source: str = ""
    reference: str = ""  # a right program (the discriminator's positive example); "" if none
    kind: str = "tests"  # or "puzzle": a P3 puzzle `sat` (then `tests` is empty), answered by `sol()`
    sat: str = ""

    @classmethod
    def from_mbpp(cls, task) -> CodeTask:
        """An MBPP task (engine.datasets.mbpp.MbppTask), its reference the dataset's program."""
        return cls(str(task.task_id), task.text, task.tests, task.setup, f"mbpp:{task.task_id}", task.code)

    def prompt(self) -> list[dict]:
        if self.kind == "puzzle":
            return [{"role": "user", "content": puzzle_prompt(self.sat)}]
        return [{"role": "user", "content": task_prompt(self.text, self.tests)}]
