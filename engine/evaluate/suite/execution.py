"""MBPP execution prediction (Austin et al. 2021, section 6): given an MBPP program and the input
of one of its tests, the model predicts what the call returns. Exact match against the value the
sandbox computes by running the reference program on that input, not against the dataset's
expected value (a test that only holds up to `==`, say 5 for 5.0, must not decide the answer).

Each task is the first of its asserts of the form `assert f(...) == LITERAL` that calls the
task's function, so the answer can be written down. Few-shot prompts (the paper's variants):
`code` shows the program and the call, `code+text` adds the task's sentence. Shots: MBPP tasks
2, 3 and 4, as in the paper's synthesis prompt. A prediction counts only if it is one Python
literal (numbers, strings, bytes, booleans, None, and tuples, lists, sets, dicts of them); it is
compared in the sandbox as `type(actual) is type(predicted) and actual == predicted`.
"""
from __future__ import annotations

import ast

from engine.datasets.mbpp import load_mbpp, split_of
from engine.evaluate.suite.base import Benchmark, Defaults, Task
from engine.evaluate.suite.mbpp import SHOT_IDS, clean_code, entry_point
from engine.lm.generation import Prompt

DONE = "[DONE]"
HEAD = "Predict what the call returns when the program runs. Answer with one Python literal."
_CONTAINERS = (ast.Tuple, ast.List, ast.Set)


def is_literal(node: ast.AST) -> bool:
    """Whether `node` is a literal value: constants, signed numbers, containers of literals, set()."""
    if isinstance(node, ast.Constant):
        return node.value is not Ellipsis
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        return isinstance(node.operand, ast.Constant) and type(node.operand.value) in (int, float, complex)
    if isinstance(node, _CONTAINERS):
        return all(is_literal(item) for item in node.elts)
    if isinstance(node, ast.Dict):
        return all(key is not None and is_literal(key) for key in node.keys) and all(map(is_literal, node.values))
    if isinstance(node, ast.Call):  # the empty set has no literal of its own
        return isinstance(node.func, ast.Name) and node.func.id == "set" and not node.args and not node.keywords
    return False


def parse_literal(text: str) -> str | None:
    """The literal `text` holds, as canonical source, or None if it is anything else."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    try:
        return ast.unparse(tree.body) if is_literal(tree.body) else None
    except RecursionError:
        return None


def prediction(reply: str) -> str | None:
    """The literal a reply predicts: the text before [DONE], without code fences; else its first line."""
    text = reply.split(DONE)[0].strip()
    if text.startswith("```"):
        text = text.strip("`").removeprefix("python").strip()
    found = parse_literal(text)
    if found is None and text:
        found = parse_literal(text.splitlines()[0])
    return found


def probe(code: str, tests: list[str]) -> tuple[str, str] | None:
    """(call, expected literal) of the first test `assert f(...) == LITERAL` on the task's function."""
    name = entry_point(code, tests)
    for test in tests:
        try:
            tree = ast.parse(test)
        except SyntaxError:
            continue
        node = tree.body[0] if len(tree.body) == 1 else None
        if not (isinstance(node, ast.Assert) and isinstance(node.test, ast.Compare) and len(node.test.ops) == 1
                and isinstance(node.test.ops[0], ast.Eq)):
            continue
        sides = [node.test.left, node.test.comparators[0]]
        for call, value in (sides, sides[::-1]):
            if (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == name
                    and is_literal(value)):
                return ast.unparse(call), ast.unparse(value)
    return None


def shot(data: dict, with_text: bool, answer: str | None = None) -> str:
    """One block of the prompt; without `answer`, the open block the model completes."""
    text = f"# Task: {data['text']}\n" if with_text else ""
    head = f"{text}# Program:\n{data['code']}\n# Call:\n{data['call']}\n# Output:\n"
    return head if answer is None else f"{head}{answer}\n{DONE}"


class ExecutionPrediction(Benchmark):
    name = "mbpp-execution"
    title = "MBPP execution prediction"
    split = "test"
    prompts = ("code", "code+text")
    defaults = Defaults(n=1, temperature=0.0, max_tokens=128, timeout_s=3.0)

    def __init__(self, data_dir=None, prompt: str = ""):
        super().__init__(data_dir, prompt)
        self._shots: str | None = None

    def all_tasks(self) -> list[Task]:
        tasks = []
        for row in sorted(load_mbpp(self.data_dir).values(), key=lambda t: t.task_id):
            code = clean_code(row.code)
            found = probe(code, row.tests)
            if found is not None:
                tasks.append(Task(str(row.task_id), {"text": row.text, "code": code, "call": found[0],
                                                     "expected": found[1], "setup": row.setup.strip()}))
        return tasks

    def load(self) -> list[Task]:
        return [task for task in self.all_tasks() if split_of(int(task.task_id)) == self.split]

    def prompt(self, task: Task, tokenizer) -> Prompt:
        with_text = self.prompt_name == "code+text"
        if self._shots is None:
            shots = {int(t.task_id): t for t in self.all_tasks() if int(t.task_id) in SHOT_IDS}
            self._shots = "\n\n".join([HEAD, *(shot(shots[i].data, with_text, shots[i].data["expected"])
                                               for i in SHOT_IDS if i in shots)])
        return f"{self._shots}\n\n{shot(task.data, with_text)}"

    def stops(self) -> tuple[str, ...]:
        return (DONE, "\n#", "\n\n")

    def program(self, task: Task, text: str, given: Prompt) -> str | None:
        return prediction(text)

    def checks(self, task: Task, program: str, timeout_s: float) -> dict[str, dict]:
        kind = type(ast.literal_eval(program)).__name__  # program is a checked literal: safe to read here
        code = f"{task.data['code']}\n\n{task.data['setup']}\n" if task.data["setup"] else task.data["code"]
        call = task.data["call"]
        return {"output": {"kind": "tests", "code": code, "all_tests": True,
                           "tests": [f"assert {call} == {program}", f"assert type({call}).__name__ == {kind!r}"]}}

    def reference(self, task: Task) -> str | None:
        return task.data["expected"]


class ExecutionPredictionValidation(ExecutionPrediction):
    name = "mbpp-execution-validation"
    title = "MBPP execution prediction (validation)"
    split = "validation"
