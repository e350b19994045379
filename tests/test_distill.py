"""Reasoning distillation's engine parts, on real parts: the structure-aware term against its
documented formula, the structural token roles of a small program, rejection sampling of teacher
traces in the real sandbox, the teacher's content cache, and the test-split refusal."""
import math

import pytest

from engine.distill.request_cache import CachedSampler
from engine.distill.traces import (
    REASONING_REQUEST,
    TraceConfig,
    TraceError,
    split_reply,
    student_messages,
    write_traces,
)
from engine.lm.generation import Completion
from engine.sandbox import verify_many
from engine.training.structure_loss import structure_aware_loss, structure_spans, token_weights
from engine.training.tasks import CodeTask

PROGRAM = "def f(a):\n    b = a + 1\n    return b\n"


def test_structural_roles_of_a_small_program():
    roles = [(PROGRAM[start:end], role) for start, end, role in structure_spans(PROGRAM)]
    assert roles == [("def", "syntax"), ("(", "syntax"), ("a", "flow"), (")", "syntax"), (":", "syntax"),
                     ("b", "flow"), ("=", "syntax"), ("a", "flow"), ("+", "syntax"), ("return", "syntax"),
                     ("b", "flow")]  # `f` (the function's name) and `1` are neither
    assert structure_spans("def f(:\n") == []  # code that does not parse has no structure to weight
    # Tokens (as offsets) over "xx" + PROGRAM: a token covering both a syntax and a flow span gets 1.
    offsets = [(0, 2), (2, 5), (5, 7), (7, 9), (9, 11), (11, 16), (16, 17), (17, 21)]
    #          "xx"    "def"   " f"   "(a"    "):"    "\n    " "b"     " = a"
    assert token_weights(offsets, 2, PROGRAM) == [0.0, 0.5, 0.0, 1.0, 0.5, 0.0, 0.5, 1.0]


def test_the_structure_term_matches_its_formula_on_a_hand_made_batch():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    logits = torch.randn(1, 5, 7)
    labels = torch.tensor([[-100, 3, 1, 6, -100]])  # positions 1-3 are trained (the answer)
    weights = torch.tensor([[0.0, 1.0, 0.0, 0.5, 0.5]])
    loss, ce, structure = structure_aware_loss(logits, labels, weights, structure_weight=0.5)
    # By hand: the logits at t predict the label at t+1.
    token_ce = [-torch.log_softmax(logits[0, t], -1)[labels[0, t + 1]].item() for t in range(3)]
    s = [1.0, 0.0, 0.5]  # weights of the trained labels at positions 1, 2, 3
    expected_ce = sum(token_ce) / 3
    expected_s = sum(w * c for w, c in zip(s, token_ce)) / sum(s)
    assert math.isclose(ce.item(), expected_ce, rel_tol=1e-5)
    assert math.isclose(structure.item(), expected_s, rel_tol=1e-5)
    assert math.isclose(loss.item(), expected_ce + 0.5 * expected_s, rel_tol=1e-5)
    plain, _, _ = structure_aware_loss(logits, labels, weights, structure_weight=0.0)
    assert math.isclose(plain.item(), expected_ce, rel_tol=1e-5)  # λ = 0 is cross-entropy alone
    none, _, zero = structure_aware_loss(logits, labels, torch.zeros_like(weights), structure_weight=0.5)
    assert zero.item() == 0.0 and math.isclose(none.item(), expected_ce, rel_tol=1e-5)


class ScriptedTeacher:
    """Replies by task, in order; counts the prompts it was asked."""

    name = "scripted teacher"

    def __init__(self, replies: dict[str, list[str]]):
        self.replies, self.asked = replies, 0

    def sample_many(self, prompts, n, params, cancel=None):
        self.asked += len(prompts) * n
        out = []
        for prompt in prompts:
            task = next(key for key in self.replies if key in prompt[0]["content"])
            out.append([Completion(text, 10, "eos") for text in self.replies[task][:n]])
        return out


RIGHT = "Reasoning: add the two numbers and return the sum.\n\n```python\ndef add(a, b):\n    return a + b\n```"
WRONG = "Reasoning: subtracting gives the sum, surely.\n\n```python\ndef add(a, b):\n    return a - b\n```"
HACK = ("Reasoning: an object equal to everything passes every assert.\n\n```python\nclass E:\n"
        "    def __eq__(self, other):\n        return True\n\ndef add(a, b):\n    return E()\n```")
TASKS = [CodeTask("1", "Write add(a, b) that returns the sum.", ["assert add(1, 2) == 3", "assert add(-1, 1) == 0"],
                  source="mbpp:601"),
         CodeTask("2", "Find x with len(x) == 3.", [], source="p3:Study_1:0", kind="puzzle",
                  sat="def sat(x: str):\n    return len(x) == 3")]
REPLIES = {"add(a, b)": [RIGHT, WRONG, "no code here, sorry", RIGHT, HACK, "```python\ndef add(a, b):\n    return a + b\n```"],
           "len(x) == 3": ["Reasoning: any three letters will do here.\n```python\ndef sol():\n    return 'abc'\n```",
                           "Reasoning: two letters are enough, I think.\n```python\ndef sol():\n    return 'ab'\n```",
                           "x", "x", "x", "x"]}


def test_rejection_sampling_keeps_only_traces_whose_code_passes_in_the_sandbox():
    teacher = ScriptedTeacher(REPLIES)
    run = write_traces(teacher, TASKS, TraceConfig(samples=6, batch_tasks=2), verify_many)
    by_task = {task.task_id: [t for t in run.traces if t.task_id == task.task_id] for task in TASKS}
    add = by_task["1"]
    assert [t.status for t in add] == ["passed", "failed", "no code", "passed", "failed", "no reasoning"]
    assert [t.kept for t in add] == [True, False, False, False, False, False]  # the 2nd right one is a duplicate
    assert add[0].reasoning == "add the two numbers and return the sum." and "return a + b" in add[0].code
    puzzle = by_task["2"]
    assert [t.status for t in puzzle[:2]] == ["passed", "failed"] and [t.kept for t in puzzle] == [True] + [False] * 5
    summary = run.summary()
    assert run.kept == 2 and summary["tasks_with_trace"] == 2 and run.asked == 12
    assert summary["counts"] == {"passed": 3, "failed": 3, "no code": 5, "no reasoning": 1}
    # The student's example: the plain task prompt (no request to reason), the reasoning, then the code.
    messages = student_messages(add[0].prompt, add[0].reasoning, add[0].code)
    assert not messages[0]["content"].endswith(REASONING_REQUEST) and "Your code should pass" in messages[0]["content"]
    assert messages[1]["content"].startswith("add the two numbers") and "```python\ndef add" in messages[1]["content"]


def test_test_splits_are_never_traced():
    teacher = ScriptedTeacher(REPLIES)
    for source in ("mbpp:11", "mbpp:510", "humaneval:HumanEval/0", "evalplus:Mbpp/2"):
        with pytest.raises(TraceError, match="test split"):
            write_traces(teacher, [CodeTask("1", "add", ["assert add(1, 2) == 3"], source=source)], TraceConfig(),
                         verify_many)
    assert teacher.asked == 0


def test_split_reply_takes_the_text_before_the_code_without_its_label():
    assert split_reply("**Reasoning:** loop over it.\n```python\nx\n```") == "loop over it."
    assert split_reply("Approach: sort, then scan once.\n\n```python\nx\n```") == "sort, then scan once."
    assert split_reply("```python\nx\n```") == ""


class CountingModel:
    name = "counting"

    def __init__(self, fail_first: int = 0):
        self.calls, self.fail_first = 0, fail_first

    def sample_many(self, prompts, n, params, cancel=None):
        self.calls += 1
        failing = self.calls <= self.fail_first
        return [[Completion("", 0, "error:http-5xx") if failing else Completion(f"{p}#{i}", 3, "eos")
                 for i in range(n)] for p in prompts]


def test_the_teacher_cache_answers_a_repeated_run_and_retries_failures(tmp_path):
    from engine.lm.generation import SamplingParams

    params = SamplingParams(max_new_tokens=8, temperature=0.7, seed=1)
    model = CountingModel(fail_first=1)
    cache = CachedSampler(model, tmp_path / "cache.jsonl")
    first = cache.sample_many(["a", "b"], 2, params)
    assert [c.finish_reason for row in first for c in row] == ["error:http-5xx"] * 4  # not cached
    second = cache.sample_many(["a", "b"], 2, params)
    assert [[c.text for c in row] for row in second] == [["a#0", "a#1"], ["b#0", "b#1"]] and model.calls == 2
    # A new process (a resumed run) reads the file: nothing is asked again, a new prompt is.
    again = CachedSampler(model, tmp_path / "cache.jsonl")
    assert again.sample_many(["a", "b"], 2, params) == second and model.calls == 2 and again.hits == 4
    again.sample_many(["a", "c"], 2, params)
    assert model.calls == 3 and again.asked == 2
    # A changed setting is a different request.
    again.sample_many(["a"], 2, SamplingParams(max_new_tokens=8, temperature=0.2, seed=1))
    assert model.calls == 4
    # A line cut short by a kill is skipped, the rest still answers.
    with (tmp_path / "cache.jsonl").open("a") as handle:
        handle.write('{"key": "abc", "te')
    assert CachedSampler(model, tmp_path / "cache.jsonl").sample_many(["b"], 2, params)[0][1].text == "b#1"


class SlowTeacher(ScriptedTeacher):
    """A teacher that takes `seconds` a batch, as a local 1.5B model takes minutes."""

    def __init__(self, replies, seconds: float):
        super().__init__(replies)
        self.seconds = seconds

    def sample_many(self, prompts, n, params, cancel=None):
        import time

        time.sleep(self.seconds)
        return super().sample_many(prompts, n, params, cancel)


def test_a_time_budget_stops_before_the_next_batch_and_a_second_run_goes_on_from_the_cache(tmp_path):
    teacher = SlowTeacher(REPLIES, seconds=0.3)
    budgeted = write_traces(CachedSampler(teacher, tmp_path / "cache.jsonl"), TASKS,
                            TraceConfig(samples=2, batch_tasks=1), verify_many, max_minutes=0.1 / 60)
    # The first batch started inside the 0.1 s budget and finished (its answers are kept); the second
    # would have started after it, so it was not asked.
    assert budgeted.out_of_time and budgeted.summary()["out_of_time"] and teacher.asked == 2
    assert {t.task_id for t in budgeted.traces} == {"1"} and budgeted.kept == 1
    resumed = write_traces(CachedSampler(teacher, tmp_path / "cache.jsonl"), TASKS,
                           TraceConfig(samples=2, batch_tasks=1), verify_many)
    assert not resumed.out_of_time and resumed.kept == 2 and teacher.asked == 4  # only task 2 was asked
