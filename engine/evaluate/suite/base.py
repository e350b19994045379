"""One small class per benchmark (as bigcode-evaluation-harness's `Task`): where its tasks come
from, what the model is given, how its reply becomes a program, and which sandbox jobs check that
program. Sampling, the sandbox, pass@k, storage and pages are shared (engine/evaluate/suite/runner.py).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from engine.lm.generation import Prompt


def benchmark_data_dir(given: str | Path | None = None) -> Path:
    """Where benchmark files live: `given`, else $AUTODIDACT_BENCHMARK_DATA, else ../shared/data."""
    if given:
        return Path(given).expanduser()
    if os.environ.get("AUTODIDACT_BENCHMARK_DATA"):
        return Path(os.environ["AUTODIDACT_BENCHMARK_DATA"]).expanduser()
    return Path(__file__).resolve().parents[4] / "shared" / "data"


@dataclass(frozen=True)
class Task:
    task_id: str
    data: dict[str, Any] = field(default_factory=dict)  # whatever the benchmark needs: tests, entry point, ...


@dataclass(frozen=True)
class Defaults:
    """The sampling a benchmark is reported with unless the user says otherwise (the papers' settings)."""

    n: int = 1
    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0
    max_tokens: int = 512
    timeout_s: float = 3.0  # the sandbox's limit for one sample's checks


class Benchmark:
    """Subclass per benchmark; instances hold the loaded tasks and the chosen prompt."""

    name: ClassVar[str]  # the registry key, e.g. "humaneval"
    title: ClassVar[str]  # what pages show, e.g. "HumanEval"
    split: ClassVar[str] = "test"  # "test" (reported only), "validation" (what gates select on) or "train"
    prompts: ClassVar[tuple[str, ...]] = ("default",)  # the first is the default
    defaults: ClassVar[Defaults] = Defaults()
    parts: ClassVar[tuple[str, ...]] = ()  # named checks reported separately besides the whole (e.g. "base")
    structural: ClassVar[bool] = False  # programs also scored against the reference (engine/evaluate/structure.py)

    def __init__(self, data_dir: str | Path | None = None, prompt: str = ""):
        self.data_dir = benchmark_data_dir(data_dir)
        self.prompt_name = prompt or self.prompts[0]
        if self.prompt_name not in self.prompts:
            raise ValueError(f"{self.name}: unknown prompt {self.prompt_name!r}; choose one of {', '.join(self.prompts)}")
        self._tasks: list[Task] | None = None

    # -- what each benchmark defines ------------------------------------------------------------
    def prepare(self, model) -> None:
        """Called once before sampling, with the model (e.g. to render prompts with its tokenizer)."""

    def load(self) -> list[Task]:
        """Every task, in the benchmark's own order; FileNotFoundError says where it looked."""
        raise NotImplementedError

    def prompt(self, task: Task, tokenizer) -> Prompt:
        """What the model is given (raw text, or chat messages for the chat template)."""
        raise NotImplementedError

    def stops(self) -> tuple[str, ...]:
        return ()

    def program(self, task: Task, text: str, given: Prompt) -> str | None:
        """The program the reply makes (None: the reply holds no code)."""
        raise NotImplementedError

    def checks(self, task: Task, program: str, timeout_s: float) -> dict[str, dict]:
        """Sandbox jobs (without ids) by part name; a sample passes when every one passes."""
        raise NotImplementedError

    def reference(self, task: Task) -> str | None:
        """The task's reference solution as a program, for the check that the checks accept it."""
        return None

    # -- shared ----------------------------------------------------------------------------------
    def tasks(self) -> list[Task]:
        if self._tasks is None:
            self._tasks = self.load()
        return self._tasks

    def describe(self) -> dict:
        return {"benchmark": self.name, "title": self.title, "split": self.split, "prompt": self.prompt_name,
                "data": str(self.data_dir)}
