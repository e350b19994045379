"""CodeBLEU's syntax and data-flow match (engine/evaluate/structure.py) against values counted by
hand on small programs and against the `codebleu` package's own corpus functions, and reported
beside pass@1 on a benchmark result."""
import pytest
from codebleu.dataflow_match import corpus_dataflow_match
from codebleu.syntax_match import corpus_syntax_match

from engine.evaluate.structure import dataflow_match, structure, syntax_match
from engine.evaluate.suite.registry import get_benchmark
from engine.evaluate.suite.runner import RunSettings, run_benchmark
from engine.lm.generation import Completion
from engine.sandbox import verify_many
from tests.support import BENCHMARK_DATA

DOUBLE = "def f(a):\n    b = a * 2\n    return b\n"
CASES = [  # (program, reference, syntax match, data-flow match), counted by hand
    # the reference's subtrees: module, function_definition, parameters, block, return_statement;
    # only `(parameters (identifier))` is the same in the program: 1 of 5
    ("def f(a):\n    return a + 1\n", "def f(a):\n    return a\n", 1 / 5, 1.0),
    # names do not count: the same structure and flow, renamed
    ("def g(x):\n    y = x * 2\n    return y\n", DOUBLE, 1.0, 1.0),
    # DOUBLE's 8 subtrees (module, function_definition, parameters, block, expression_statement,
    # assignment, binary_operator, return_statement): the parameters and `return <identifier>` are
    # the same, 2 of 8; of its 5 flow edges (a from nothing, 2 from nothing, b computed from a and 2,
    # a from a, b from b) the program keeps 3
    ("def g(x):\n    y = 2\n    return x\n", DOUBLE, 2 / 8, 3 / 5),
]


@pytest.mark.parametrize("program, reference, syntax, flow", CASES)
def test_matches_counted_by_hand_and_by_codebleu(program, reference, syntax, flow):
    assert syntax_match(program, reference) == pytest.approx(syntax)
    assert dataflow_match(program, reference) == pytest.approx(flow)
    assert syntax_match(program, reference) == pytest.approx(corpus_syntax_match([[reference]], [program], "python"))
    assert dataflow_match(program, reference) == pytest.approx(
        corpus_dataflow_match([[reference]], [program], "python"))


def test_no_code_scores_zero_and_a_reference_without_flow_is_left_out():
    assert structure(None, DOUBLE) == {"syntax_match": 0.0, "dataflow_match": 0.0}
    assert structure("def f():\n    return 1\n", "def f():\n    pass\n")["dataflow_match"] is None
    assert structure("x = 1", None) is None
    # comments and docstrings do not count
    assert syntax_match('def f(a):\n    """Twice a."""\n    b = a * 2  # double\n    return b\n', DOUBLE) == 1.0


class Replayer:
    name, backend, quantization, device, tokenizer = "replay", "scripted", "none", "cpu", None

    def __init__(self, answers):
        self.answers = answers

    def sample_many(self, prompts, n, params, cancel=None):
        return [[Completion(self.answers.pop(0), 3, "stop")] for _ in prompts]


def test_a_benchmark_result_reports_structure_beside_pass_at_1():
    benchmark = get_benchmark("mbpp", BENCHMARK_DATA, "instruct")
    first, second = benchmark.tasks()[:2]
    answers = [f"```python\n{first.data['code']}\n```", "I cannot write that."]
    result = run_benchmark(benchmark, Replayer(answers), RunSettings(limit=2), lambda jobs: verify_many(jobs))
    samples = [row["samples"][0] for row in result.rows]
    assert samples[0]["structure"] == {"syntax_match": 1.0, "dataflow_match": 1.0} and samples[0]["status"] == "passed"
    assert samples[1]["structure"]["syntax_match"] == 0.0  # no code
    assert result.structure["syntax_match"] == 0.5 and result.pass_at_k == {"1": 0.5}
