"""MBPP execution prediction and the MathQA-Python loader, on hand-made rows through the real
sandbox: a prediction is scored against the value the program really returns (type included),
anything but a literal scores nothing, and MathQA answers are compared within a tolerance."""
import json

import pytest

from engine.evaluate.suite.execution import parse_literal, prediction
from engine.evaluate.suite.registry import get_benchmark
from engine.evaluate.suite.runner import RunSettings, check_references, run_benchmark
from engine.lm.generation import Completion
from engine.sandbox import verify_many


def verify(jobs):
    return verify_many(jobs)


def mbpp_row(task_id, text, code, tests):
    return {"task_id": task_id, "text": text, "code": code, "test_list": tests, "test_setup_code": "",
            "challenge_test_list": []}


ROWS = [
    mbpp_row(2, "Add one.", "def inc(x):\n    return x + 1", ["assert inc(1) == 2"]),
    mbpp_row(3, "Say yes.", "def yes():\n    return True", ["assert yes() == True"]),
    mbpp_row(4, "Pair up.", "def pair(a):\n    return [a, a]", ["assert pair(3) == [3, 3]"]),
    # the dataset says 2; the program returns 2.0: the live value decides, type included
    mbpp_row(11, "Halve a number.", "def half(x):\n    return x / 2", ["assert half(4) == 2"]),
    mbpp_row(12, "Greet someone.", "def greet(n):\n    return 'hi ' + n",
             ["assert math.isclose(1, 1)", "assert greet('bo') == 'hi bo'"]),
    mbpp_row(13, "Count letters.", "def count(s):\n    return {c: s.count(c) for c in s}",
             ["assert count('aab') == {'a': 2, 'b': 1}"]),
    mbpp_row(14, "Close enough.", "import math\ndef root(x):\n    return math.sqrt(x)",
             ["assert math.isclose(root(4), 2)"]),  # no test of the form f(...) == literal: not a task
]

REPLIES = {"half(4)": "2\n[DONE]", "greet('bo')": "```python\n'hi bo'\n```", "count('aab')": "print('a2b1')"}


class Predictor:
    name, backend, quantization, device, tokenizer = "predictor", "scripted", "none", "cpu", None

    def __init__(self, replies):
        self.replies, self.prompts = replies, []

    def sample_many(self, prompts, n, params, cancel=None):
        self.prompts += prompts
        return [[Completion(next(r for call, r in self.replies.items()
                                                 if p.endswith(f"# Call:\n{call}\n# Output:\n")), 3, "stop")] for p in prompts]


@pytest.fixture
def data(tmp_path):
    (tmp_path / "mbpp").mkdir()
    (tmp_path / "mbpp" / "mbpp.jsonl").write_text("".join(json.dumps(row) + "\n" for row in ROWS))
    return tmp_path


def test_predictions_are_scored_against_the_live_value_type_included(data):
    benchmark = get_benchmark("mbpp-execution", data, "code+text")
    assert [t.task_id for t in benchmark.tasks()] == ["11", "12", "13"]
    assert benchmark.tasks()[1].data["call"] == "greet('bo')"  # the first test that fits, not the first test
    model = Predictor(REPLIES)
    result = run_benchmark(benchmark, model, RunSettings(), verify)
    verdicts = {row["task_id"]: row["samples"][0] for row in result.rows}
    assert verdicts["12"]["status"] == "passed" and verdicts["12"]["program"] == "'hi bo'"
    assert verdicts["11"]["status"] == "failed"  # 2 == 2.0, but an int is not the float the call returns
    assert verdicts["13"]["status"] == "no code"  # not a literal: never run
    assert result.pass_at_k == {"1": round(1 / 3, 4)} and result.solved == 1
    prompt = model.prompts[0]
    assert prompt.count("[DONE]") == 3 and "# Task: Add one." in prompt and "inc(1)\n# Output:\n2\n[DONE]" in prompt
    assert prompt.endswith("# Call:\nhalf(4)\n# Output:\n") and "Halve a number." in prompt

    right = run_benchmark(get_benchmark("mbpp-execution", data, "code"), Predictor(
        {"half(4)": "2.0", "greet('bo')": "'hi bo'", "count('aab')": "{'b': 1, 'a': 2}\n[DONE]"}), RunSettings(),
        verify)
    assert right.pass_at_k == {"1": 1.0}
    # the dataset's own expected value is wrong for 11 (an int for a float): the reference check says so
    assert [row["task_id"] for row in check_references(benchmark, verify)] == ["11"]


def test_only_literals_count_as_predictions():
    assert parse_literal("[1, -2.5, (3, 'a'), {'k': None}, b'x', set()]") is not None
    for code in ("print(1)", "__import__('os').system('id')", "[x for x in 'ab']", "1 + 2", "f(3)", "...", ""):
        assert parse_literal(code) is None, code
    assert prediction("(4, 5)\n[DONE]\nmore") == "(4, 5)" and prediction("True because it is") is None
    assert prediction("[1, 2]\nThe call returns a list.") == "[1, 2]"


def test_mathqa_python_rows_run_as_a_benchmark(tmp_path):
    folder = tmp_path / "mathqa-python"
    folder.mkdir()
    train = [{"text": f"What is {a} plus {a}?", "code": f"n0 = {a}.0\nanswer = n0 + n0", "answer": 2.0 * a}
             for a in (1, 2, 3, 4)]
    test = [{"task_id": "t1", "text": "A train covers 120 km in 1.5 hours. What is its speed?",
             "code": "n0 = 120.0\nn1 = 1.5\nanswer = n0 / n1", "answer": 80.0},
            {"task_id": "t2", "text": "What is one third of 10?", "code": "answer = 10 / 3", "answer": 3.3333}]
    (folder / "train.json").write_text(json.dumps(train))
    (folder / "test.jsonl").write_text("".join(json.dumps(row) + "\n" for row in test))
    benchmark = get_benchmark("mathqa-python", tmp_path)
    assert check_references(benchmark, verify) == []  # 3.3333 is 10/3 within the tolerance
    replies = {"speed": "n0 = 120.0\nn1 = 1.5\nanswer = n1 / n0\n[DONE]", "third": "answer = 10 / 3\n[DONE]"}

    class Solver(Predictor):
        def sample_many(self, prompts, n, params, cancel=None):
            self.prompts += prompts
            return [[Completion(next(r for key, r in self.replies.items() if key in p.rsplit("[DONE]", 1)[-1]), 5,
                                "stop")] for p in prompts]

    solver = Solver(replies)
    result = run_benchmark(benchmark, solver, RunSettings(), verify)
    assert {row["task_id"]: row["c"] for row in result.rows} == {"t1": 0, "t2": 1}
    assert solver.prompts[0].count("[DONE]") == 3 and "What is 4 plus 4" not in solver.prompts[0]  # three shots
    (folder / "test.jsonl").write_text('{"text": "no code or answer"}\n')
    with pytest.raises(ValueError, match="row 1 lacks code, answer"):
        get_benchmark("mathqa-python", tmp_path).tasks()
    with pytest.raises(FileNotFoundError, match="not bundled"):
        get_benchmark("mathqa-python", tmp_path / "elsewhere").tasks()
