"""P3 (Schuster et al. 2021, as evaluated in "Language Models Can Teach Themselves to Program
Better"): the 228 test puzzles, one instance per problem, each answer a `def sol` whose result
`sat` must accept (`is True`) within the paper's 1 s judge. Reported with n up to 100 samples at
T = 0.8 and 150 new tokens, pass@k for k in {1, 10, 100}. The prompt choices are the solving
styles of self-play (engine/selfplay/solving_prompts.py), the paper's own few-shot prefix included."""
from __future__ import annotations

from engine.evaluate.suite.base import Benchmark, Defaults, Task
from engine.lm.generation import Prompt
from engine.lm.prompt_tokens import chat_text, token_aligned
from engine.selfplay.p3 import load_p3, one_per_problem
from engine.selfplay.solving_prompts import STYLES, solving_style


class P3Test(Benchmark):
    name = "p3"
    title = "P3 test"
    prompts = STYLES
    defaults = Defaults(n=10, temperature=0.8, top_k=50, top_p=1.0, max_tokens=150, timeout_s=1.0)
    p3_split = "test"

    def load(self) -> list[Task]:
        puzzles = [p for p in one_per_problem(load_p3(self.data_dir / "p3")) if p.split == self.p3_split]
        if not puzzles:
            raise FileNotFoundError(f"no {self.p3_split}-split puzzles in {self.data_dir / 'p3'}")
        return [Task(p.name, {"sat": p.sat, "solutions": list(p.solutions)}) for p in puzzles]

    def prepare(self, model) -> None:
        tokenizer = getattr(model, "tokenizer", None)
        self._style = solving_style(self.prompt_name, lambda messages: chat_text(tokenizer, messages),
                                    (lambda text: token_aligned(tokenizer, text)) if tokenizer is not None else None)

    def _styled(self):
        if not hasattr(self, "_style"):
            self.prepare(None)
        return self._style

    def prompt(self, task: Task, tokenizer) -> Prompt:
        return self._styled().prompt(task.data["sat"])

    def stops(self) -> tuple[str, ...]:
        return tuple(self._styled().stops)

    def program(self, task: Task, text: str, given: Prompt) -> str | None:
        return self._styled().solution(task.data["sat"], text)

    def checks(self, task: Task, program: str, timeout_s: float) -> dict[str, dict]:
        return {"sat": {"kind": "puzzle", "sat": task.data["sat"], "sol": program}}

    def reference(self, task: Task) -> str | None:
        return min(task.data["solutions"], key=len) if task.data["solutions"] else None


class P3Validation(P3Test):
    """A fifth of P3's train problems, never trained on or shown in prompts: what gates select on."""

    name = "p3-validation"
    title = "P3 validation"
    split = "validation"
    p3_split = "validation"
