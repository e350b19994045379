"""MBPP (Austin et al. 2021): a one-sentence task, its three asserts, a function to write. Three
benchmarks, each result naming its prompt:

- `mbpp`: the 500 test tasks (ids 11-510) of `mbpp.jsonl`; `mbpp-validation`: its 90 validation
  tasks (511-600), what gates may select on;
- `mbpp-train`: the train tasks a round may learn from (601-974 less those MBPP+ holds), never
  reported: a model's own passing answers to them become rehearsal data (`engine.datasets.own_replies`);
- `mbpp-sanitized`: the hand-verified subset's test tasks (`sanitized-mbpp.json`, ids in 11-510
  as the official split: 257), whose text field is `prompt` and whose asserts may need
  `test_imports`.

Prompts: `paper` (default), the paper's 3-shot prompt (tasks 2, 3, 4 as shots; the model writes
the code after `[BEGIN]` and stops at `[DONE]`), and `instruct`, chat messages asking for the
function in one code block. A sample passes when every assert of its task passes. MBPP's
`test_setup_code` (tasks 367 and 927) builds trees out of the solution's own `Node` class, so it
runs after the program, as `program + setup + asserts` does in MBPP's own harnesses; the sanitized
set's `test_imports` run before it.
"""
from __future__ import annotations

import ast
import json
from pathlib import Path

from engine.codechat.checks import called_names
from engine.datasets.held_out import trainable_mbpp
from engine.datasets.mbpp import load_mbpp, split_of
from engine.evaluate.suite.base import Benchmark, Defaults, Task
from engine.lm.code_extraction import extract_code, sanitize
from engine.lm.generation import Prompt

SHOT_IDS = (2, 3, 4)
DONE = "[DONE]"
INSTRUCTION = "Write a Python function for this task. Your code should pass these tests:"
ANSWER_FORM = "Answer with the function, and any imports it needs, in one ```python code block."


def paper_shot(text: str, tests: list[str], code: str | None = None) -> str:
    """One block of the paper's prompt; without `code`, the open target the model completes."""
    head = (f"You are an expert Python programmer, and here is your task: {text} Your code should pass these "
            f"tests:\n\n" + "\n".join(tests) + "\n[BEGIN]\n")
    return head if code is None else f"{head}{code}\n{DONE}"


def instruct_messages(text: str, tests: list[str]) -> list[dict]:
    """The `instruct` prompt: one user message asking for the function in one code block."""
    return [{"role": "user", "content": f"{INSTRUCTION}\n\n{text}\n\n```python\n" + "\n".join(tests)
             + f"\n```\n\n{ANSWER_FORM}"}]


def clean_code(code: str) -> str:
    return code.replace("\r\n", "\n").strip()


def entry_point(code: str, tests: list[str]) -> str | None:
    """The function the asserts call that the reference defines (extract_code looks for it)."""
    try:
        defined = {node.name for node in ast.parse(code).body if isinstance(node, ast.FunctionDef)}
    except SyntaxError:
        return None
    for test in tests:
        try:
            tree = ast.parse(test)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in defined:
                return node.func.id
    return None


def mbpp_task(task_id: int, text: str, code: str, tests: list[str], imports: str = "", setup: str = "") -> Task:
    code = clean_code(code)
    return Task(str(task_id), {"text": text.strip(), "code": code, "tests": list(tests), "imports": imports,
                               "setup": setup.replace("\r\n", "\n").strip(), "entry_point": entry_point(code, tests)})


class Mbpp(Benchmark):
    name = "mbpp"
    title = "MBPP"
    split = "test"
    prompts = ("paper", "instruct")
    defaults = Defaults(n=1, temperature=0.0, max_tokens=512, timeout_s=3.0)
    structural = True

    def __init__(self, data_dir=None, prompt: str = ""):
        super().__init__(data_dir, prompt)
        self._shots: list[Task] | None = None

    def all_tasks(self) -> list[Task]:
        """Every MBPP task, in id order."""
        return [mbpp_task(t.task_id, t.text, t.code, t.tests, setup=t.setup)
                for t in sorted(load_mbpp(self.data_dir).values(), key=lambda t: t.task_id)]

    def load(self) -> list[Task]:
        return [task for task in self.all_tasks() if split_of(int(task.task_id)) == self.split]

    def shots(self) -> list[Task]:
        if self._shots is None:
            by_id = {int(task.task_id): task for task in self.all_tasks()}
            self._shots = [by_id[task_id] for task_id in SHOT_IDS]
        return self._shots

    def prompt(self, task: Task, tokenizer) -> Prompt:
        data = task.data
        if self.prompt_name == "instruct":
            return instruct_messages(data["text"], data["tests"])
        shots = [paper_shot(s.data["text"], s.data["tests"], s.data["code"]) for s in self.shots()]
        return "\n".join([*shots, paper_shot(data["text"], data["tests"])])

    def stops(self) -> tuple[str, ...]:
        return (DONE,) if self.prompt_name == "paper" else ()

    def program(self, task: Task, text: str, given: Prompt) -> str | None:
        if self.prompt_name == "instruct":
            code = extract_code(text, task.data["entry_point"])
            # what the asserts call beside the entry point stays too (MBPP 601's tests build Pairs)
            return sanitize(code, task.data["entry_point"], called_names(task.data["tests"])) if code else None
        code = text.split(DONE)[0].strip()
        return code + "\n" if code else None

    def checks(self, task: Task, program: str, timeout_s: float) -> dict[str, dict]:
        code = f"{program.rstrip()}\n\n{task.data['setup']}\n" if task.data["setup"] else program
        job = {"kind": "tests", "code": code, "tests": task.data["tests"]}
        if task.data["imports"]:
            job["setup"] = task.data["imports"]
        return {"tests": job}

    def reference(self, task: Task) -> str | None:
        return task.data["code"] + "\n"


class MbppValidation(Mbpp):
    name = "mbpp-validation"
    title = "MBPP (validation)"
    split = "validation"


class MbppTrain(Mbpp):
    name = "mbpp-train"
    title = "MBPP (train)"
    split = "train"

    def load(self) -> list[Task]:
        trainable = {task.task_id for task in trainable_mbpp(self.data_dir)}
        return [task for task in self.all_tasks() if int(task.task_id) in trainable]


class SanitizedMbpp(Mbpp):
    name = "mbpp-sanitized"
    title = "MBPP (sanitized)"

    def path(self) -> Path:
        return self.data_dir / "mbpp" / "sanitized-mbpp.json"

    def all_tasks(self) -> list[Task]:
        path = self.path()
        if not path.is_file():
            raise FileNotFoundError(f"sanitized MBPP not found at {path} (set AUTODIDACT_BENCHMARK_DATA to the "
                                    f"data folder)")
        rows = sorted(json.loads(path.read_text(encoding="utf-8")), key=lambda row: int(row["task_id"]))
        return [mbpp_task(int(row["task_id"]), row["prompt"], row["code"], row["test_list"],
                          imports="\n".join(row.get("test_imports") or [])) for row in rows]

    def shots(self) -> list[Task]:
        """Tasks 2, 3, 4 as the sanitized set words them, else as mbpp.jsonl does."""
        if self._shots is None:
            by_id = {int(task.task_id): task for task in self.all_tasks()}
            if any(task_id not in by_id for task_id in SHOT_IDS):
                by_id = {int(task.task_id): task for task in Mbpp.all_tasks(self)}
            self._shots = [by_id[task_id] for task_id in SHOT_IDS]
        return self._shots
