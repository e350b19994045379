"""engine/evaluate/suite: MBPP (test, validation, sanitized), HumanEval+ and MBPP+ through the real
sandbox: task counts as the data says, prompts in their papers' forms, reference solutions pass
and wrong ones fail, and the EvalPlus checks keep its semantics (base beside base+plus, float
tolerance, HumanEval/32's oracle, per-input time limits, digests for large expected values)."""
import os

import pytest

from engine.evaluate.suite import evalplus
from engine.evaluate.suite.registry import get_benchmark, names
from engine.evaluate.suite.runner import RunSettings, check_programs, check_references, run_benchmark
from engine.lm.generation import Completion
from engine.sandbox import verify_many
from tests.support import BENCHMARK_DATA

CODE_BENCHMARKS = ("mbpp", "mbpp-validation", "mbpp-sanitized", "humaneval-plus", "mbpp-plus")


def verify(jobs):
    return verify_many(jobs)


@pytest.fixture(scope="module", autouse=True)
def oracle_cache(tmp_path_factory):
    """A fresh cache of expected outputs for this module (never the user's)."""
    before = os.environ.get("AUTODIDACT_CACHE_DIR")
    os.environ["AUTODIDACT_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if before is None:
        os.environ.pop("AUTODIDACT_CACHE_DIR")
    else:
        os.environ["AUTODIDACT_CACHE_DIR"] = before


@pytest.fixture(scope="module")
def plus():
    """HumanEval+ and MBPP+ with the expected outputs of the tasks these tests use."""
    benchmarks = {name: get_benchmark(name, BENCHMARK_DATA) for name in ("humaneval-plus", "mbpp-plus")}
    used = {"humaneval-plus": ["HumanEval/0", "HumanEval/1", "HumanEval/2", "HumanEval/3", "HumanEval/32"],
            "mbpp-plus": ["Mbpp/2", "Mbpp/3", "Mbpp/4", "Mbpp/126"]}
    for name, benchmark in benchmarks.items():
        tasks = [task for task in benchmark.tasks() if task.task_id in used[name]]
        assert benchmark.compute_expected(tasks) == {}
    return benchmarks


def task(benchmark, task_id):
    return next(t for t in benchmark.tasks() if t.task_id == task_id)


def returns_none(benchmark, t) -> str:
    """The reference with its function redefined to return None (a wrong solution for every task)."""
    entry = t.data["entry_point"]
    return f"{benchmark.reference(t)}\n\ndef {entry}(*args, **kwargs):\n    return None\n"


def base_only(benchmark, t) -> str:
    """Right on the base inputs (it remembers them), wrong on every other: passes base, fails plus."""
    entry = t.data["entry_point"]
    base = {repr(tuple(inp)) for inp in t.data["base_input"]}
    return (f"{benchmark.reference(t)}\n\n_reference = {entry}\n_base = {base!r}\n\n\n"
            f"def {entry}(*args):\n    return _reference(*args) if repr(args) in _base else None\n")


# HumanEval/32: Newton's root, or another root bisection finds in [-10, 10] where there is one.
OTHER_ROOT = """

_newton = find_zero


def find_zero(xs: list):
    x = _newton(xs)
    lo, hi = -10.0, 10.0
    if (poly(xs, lo) > 0) == (poly(xs, hi) > 0):
        return x
    for _ in range(200):
        mid = (lo + hi) / 2
        if (poly(xs, mid) > 0) == (poly(xs, lo) > 0):
            lo = mid
        else:
            hi = mid
    other = min((lo, hi), key=lambda y: abs(poly(xs, y)))
    return other if abs(poly(xs, other)) <= 1e-6 and abs(other - x) > 1e-3 else x
"""


def test_the_code_benchmarks_are_registered_with_the_data_counts():
    assert set(CODE_BENCHMARKS) <= set(names())
    counts = {name: len(get_benchmark(name, BENCHMARK_DATA).tasks()) for name in CODE_BENCHMARKS}
    assert counts == {"mbpp": 500, "mbpp-validation": 90, "mbpp-sanitized": 257, "humaneval-plus": 164,
                      "mbpp-plus": 378}
    mbpp = get_benchmark("mbpp", BENCHMARK_DATA)
    assert (mbpp.tasks()[0].task_id, mbpp.tasks()[-1].task_id) == ("11", "510")
    validation = get_benchmark("mbpp-validation", BENCHMARK_DATA)
    assert validation.split == "validation" and validation.tasks()[0].task_id == "511"
    sanitized = get_benchmark("mbpp-sanitized", BENCHMARK_DATA).tasks()
    assert all(11 <= int(t.task_id) <= 510 for t in sanitized)
    assert get_benchmark("humaneval-plus", BENCHMARK_DATA).parts == ("base",)


def test_mbpp_paper_prompt_is_three_shots_and_the_open_target():
    mbpp = get_benchmark("mbpp", BENCHMARK_DATA)
    assert mbpp.prompt_name == "paper" and mbpp.stops() == ("[DONE]",)
    t = mbpp.tasks()[0]
    prompt = mbpp.prompt(t, None)
    assert isinstance(prompt, str) and prompt.endswith("[BEGIN]\n")
    assert prompt.count("[BEGIN]") == 4 and prompt.count("[DONE]") == 3
    blocks = prompt.split("You are an expert Python programmer, and here is your task: ")[1:]
    assert len(blocks) == 4 and blocks[0].startswith("Write a function to find the similar elements")
    assert "Your code should pass these tests:\n\n" + "\n".join(t.data["tests"]) + "\n[BEGIN]\n" in blocks[3]
    assert blocks[1].rstrip().endswith("[DONE]") and "def is_not_prime" in blocks[1]  # task 3's code
    assert mbpp.program(t, "def f():\n    return 1\n[DONE]\nmore text", prompt) == "def f():\n    return 1\n"
    sanitized = get_benchmark("mbpp-sanitized", BENCHMARK_DATA)
    s_prompt = sanitized.prompt(sanitized.tasks()[0], None)
    assert s_prompt.count("[DONE]") == 3 and s_prompt.endswith("[BEGIN]\n")
    assert "Write a function to find the shared elements from the given two lists." in s_prompt  # sanitized wording


def test_instruct_prompts_ask_for_one_code_block():
    mbpp = get_benchmark("mbpp", BENCHMARK_DATA, prompt="instruct")
    t = mbpp.tasks()[0]
    messages = mbpp.prompt(t, None)
    assert messages[0]["role"] == "user" and t.data["text"] in messages[0]["content"]
    assert all(test in messages[0]["content"] for test in t.data["tests"]) and "```python" in messages[0]["content"]
    reply = "Sure:\n```python\ndef helper():\n    pass\n```\n```python\ndef remove_Occ(s, ch):\n    return s\n```"
    assert mbpp.program(t, reply, messages) == "def remove_Occ(s, ch):\n    return s\n"
    assert mbpp.stops() == ()
    mbpp_plus = get_benchmark("mbpp-plus", BENCHMARK_DATA)
    t = mbpp_plus.tasks()[0]
    content = mbpp_plus.prompt(t, None)[0]["content"]
    assert content.startswith(evalplus.MBPP_INSTRUCTION) and t.data["prompt"].strip() in content
    humaneval_plus = get_benchmark("humaneval-plus", BENCHMARK_DATA, prompt="completion")
    t = humaneval_plus.tasks()[0]
    assert humaneval_plus.prompt(t, None) == t.data["prompt"] and "\ndef " in humaneval_plus.stops()


def test_mbpp_references_pass_and_wrong_solutions_fail():
    for name in ("mbpp", "mbpp-validation", "mbpp-sanitized"):
        benchmark = get_benchmark(name, BENCHMARK_DATA)
        # every task (367 and 927 need their setup); 123 takes ~2 s of its 3 s here, more on a busy host
        assert check_references(benchmark, verify, timeout_s=10.0) == [], name
        tasks = benchmark.tasks()[:4]
        verdicts = check_programs(benchmark, [(t, returns_none(benchmark, t)) for t in tasks], 3.0, verify)
        assert all(v["status"] == "failed" for v in verdicts), (name, verdicts)
    sanitized = get_benchmark("mbpp-sanitized", BENCHMARK_DATA)
    with_imports = next(t for t in sanitized.tasks() if t.data["imports"])  # asserts that use math.isclose
    assert check_programs(sanitized, [(with_imports, sanitized.reference(with_imports))], 3.0,
                          verify)[0]["status"] == "passed"


def test_plus_references_pass_and_base_is_reported_beside_plus(plus):
    for name, benchmark in plus.items():
        tasks = benchmark.tasks()[:3]
        items = [(t, benchmark.reference(t)) for t in tasks] + [(t, returns_none(benchmark, t)) for t in tasks]
        items += [(t, base_only(benchmark, t)) for t in tasks]
        verdicts = check_programs(benchmark, items, 3.0, verify)
        right, wrong, half = verdicts[:3], verdicts[3:6], verdicts[6:]
        assert all(v["status"] == "passed" for v in right), (name, right)
        assert all(v["checks"]["base"]["status"] == v["checks"]["plus"]["status"] == "failed" for v in wrong), wrong
        for verdict in half:
            assert verdict["status"] == "failed" and verdict["checks"]["base"]["status"] == "passed"
            assert verdict["checks"]["plus"]["status"] == "failed" and "plus input" in verdict["checks"]["plus"]["detail"]
    mbpp_plus = plus["mbpp-plus"]  # its reference defines `sum`: the harness must not call it
    shadowing = task(mbpp_plus, "Mbpp/126")
    assert check_programs(mbpp_plus, [(shadowing, mbpp_plus.reference(shadowing))], 3.0, verify)[0]["status"] == "passed"


def test_plus_pass_at_k_reports_base_and_base_plus(plus):
    benchmark = plus["mbpp-plus"]
    first, second = benchmark.tasks()[:2]
    replies = {first.task_id: benchmark.reference(first), second.task_id: base_only(benchmark, second)}

    class Replay:
        name, backend, quantization, device, tokenizer = "replay", "replay", "none", "cpu", None

        def sample_many(self, prompts, n, params, cancel=None):
            by_prompt = {str(benchmark.prompt(t, None)): t for t in (first, second)}
            return [[Completion(f"```python\n{replies[by_prompt[str(p)].task_id]}```", 5, "stop")] for p in prompts]

    result = run_benchmark(benchmark, Replay(), RunSettings(limit=2, ks=(1,)), verify)
    assert result.pass_at_k == {"1": 0.5} and result.parts["base"] == {"1": 1.0}


def test_evalplus_semantics_tolerance_special_oracle_and_time_limits(plus):
    humaneval_plus = plus["humaneval-plus"]
    truncate = task(humaneval_plus, "HumanEval/2")  # atol 1e-6
    find_zero = task(humaneval_plus, "HumanEval/32")  # any x with |poly(xs, x)| <= 1e-4 is right
    close_elements = task(humaneval_plus, "HumanEval/0")
    nearly = truncate.data["prompt"] + "    return number % 1.0 + 1e-9\n"
    too_far = truncate.data["prompt"] + "    return number % 1.0 + 1e-3\n"
    other_root = humaneval_plus.reference(find_zero) + OTHER_ROOT  # far from the expected root, still a root
    longest = max(len(inp[0]) for inp in close_elements.data["base_input"])
    slow = humaneval_plus.reference(close_elements).replace(  # late on the longer plus inputs
        "    sorted_numbers", f"    if len(numbers) > {longest}:\n        import time\n        time.sleep(1.2)\n"
                             f"    sorted_numbers")
    assert slow != humaneval_plus.reference(close_elements)
    verdicts = check_programs(humaneval_plus, [(truncate, nearly), (truncate, too_far), (find_zero, other_root),
                                               (close_elements, slow)], 3.0, verify)
    assert [v["status"] for v in verdicts] == ["passed", "failed", "passed", "failed"], verdicts
    assert verdicts[3]["checks"]["base"]["status"] == "passed"
    assert "took longer than its 1 s limit" in verdicts[3]["checks"]["plus"]["detail"]
    jobs = humaneval_plus.checks(close_elements, "pass", 3.0)
    assert jobs["plus"]["timeout_s"] == 61.0 and jobs["base"]["timeout_s"] == len(close_elements.data["base_input"]) + 1


def test_the_oracle_survives_small_windows_and_digests(monkeypatch, tmp_path):
    """Expected values come back in windows (several jobs when they are long) and, past a budget, as
    digests compared by Python's equality; either way the verdicts are the same."""
    monkeypatch.setenv("AUTODIDACT_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(evalplus, "CHUNK", 100)
    monkeypatch.setattr(evalplus, "ORACLE_TESTS", 12)  # windows of 1,100 characters
    monkeypatch.setattr(evalplus, "DIGEST_BUDGET", 0)  # every value compared exactly goes as a digest
    benchmark = get_benchmark("humaneval-plus", BENCHMARK_DATA)
    t = benchmark.tasks()[1]  # separate_paren_groups: lists of strings, 83 plus inputs
    assert benchmark.compute_expected([t]) == {}
    expected = benchmark.oracle(t)
    assert expected["plus"]["values"]["json"] == [None] * len(t.data["plus_input"])
    assert len(expected["plus"]["digests"]) == len(t.data["plus_input"])
    verdicts = check_programs(benchmark, [(t, benchmark.reference(t)), (t, base_only(benchmark, t))], 3.0, verify)
    assert verdicts[0]["status"] == "passed" and verdicts[1]["checks"]["plus"]["status"] == "failed"
    assert (tmp_path / "evalplus" / f"HumanEvalPlus-{benchmark.sha256()}.json").is_file()


def test_a_reply_is_run_as_evalplus_sanitizes_it_and_old_runs_can_be_rescored(plus):
    """A reply's own wrong example asserts, prints and a tail cut at the token limit are not what the
    benchmark checks: only what the entry point needs runs (as EvalPlus's sanitizer keeps)."""
    benchmark = plus["humaneval-plus"]
    t = task(benchmark, "HumanEval/0")
    body = benchmark.reference(t).split("def has_close_elements", 1)[1]
    reply = ("Here it is:\n\n```python\nfrom typing import List\n\nLIMIT = 1e9\n\n\ndef has_close_elements"
             + body + "\n\ndef check():\n    assert has_close_elements([1.0], 0.5) is True, 'my own wrong example'\n\n"
             "check()\nprint(has_close_elements([1.0, 2.0], 0.5))\nprint(has_close_elements([1.0, 2.0")
    program = benchmark.program(t, reply, "")
    assert "check()" not in program and "print(" not in program and "def has_close_elements" in program
    assert check_programs(benchmark, [(t, program)], 3.0, verify)[0]["status"] == "passed"

    # An earlier run that ran the whole block (and failed on the reply's own assert) is checked again.
    earlier = {"benchmark": benchmark.describe(), "settings": RunSettings(prompt="instruct", n=1).resolved(benchmark).as_dict(),
               "pass_at_k": {"1": 0.0}, "parts": {}, "rows": [{"task_id": t.task_id, "n": 1, "c": 0, "parts": {}, "samples": [
                   {"text": reply, "tokens": 9, "finish": "length", "program": reply, "status": "error", "checks": {}}]}]}
    from engine.evaluate.suite.runner import rescore

    again = rescore(benchmark, earlier, verify)
    assert again["pass_at_k"] == {"1": 1.0} and again["parts"]["base"] == {"1": 1.0}
    assert again["rescored"]["before"]["pass_at_k"] == {"1": 0.0}
