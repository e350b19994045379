"""engine/evaluate: the unbiased pass@k estimator against hand-computed values, and both
harnesses (P3, HumanEval) through the real sandbox with a model that replays known answers
(every puzzle must then count as solved) and with a tiny random model (nothing crashes, the
numbers are well formed)."""
import math

import pytest

from engine.evaluate import paired
from engine.evaluate.humaneval_eval import evaluate_humaneval, load_humaneval
from engine.evaluate.p3_eval import P3EvalConfig, evaluate_p3, held_out_puzzles
from engine.evaluate.pass_at_k import mean_pass_at_k, pass_at_k, report_ks
from engine.lm.generation import Completion
from engine.lm.tiny import build_tiny_model
from engine.lm.transformers_backend import TransformersModel
from engine.sandbox import verify_many
from engine.selfplay.puzzle_code import rename_function
from engine.selfplay.solving_prompts import EXAMPLES
from tests.support import BENCHMARK_DATA


def verify(jobs):
    return verify_many(jobs)


def test_pass_at_k_matches_hand_computed_values():
    assert pass_at_k(10, 0, 1) == 0.0 and pass_at_k(10, 0, 10) == 0.0  # c = 0
    assert pass_at_k(10, 10, 1) == 1.0 and pass_at_k(5, 5, 5) == 1.0  # c = n
    assert pass_at_k(10, 8, 5) == 1.0 and pass_at_k(10, 1, 10) == 1.0  # n - c < k
    assert math.isclose(pass_at_k(10, 1, 1), 0.1)  # c / n at k = 1
    assert math.isclose(pass_at_k(10, 3, 1), 0.3)
    assert math.isclose(pass_at_k(10, 2, 5), 1 - math.comb(8, 5) / math.comb(10, 5))  # = 7/9
    assert math.isclose(pass_at_k(10, 2, 5), 7 / 9)
    assert math.isclose(pass_at_k(100, 3, 10), 1 - math.comb(97, 10) / math.comb(100, 10))
    assert math.isclose(pass_at_k(4, 1, 2), 0.5)  # 1 - C(3,2)/C(4,2) = 1 - 3/6
    assert math.isclose(mean_pass_at_k([(10, 0), (10, 10), (10, 1)], 1), (0 + 1 + 0.1) / 3)
    assert report_ks(10) == [1, 10] and report_ks(100) == [1, 10, 100] and report_ks(5) == [1]
    for bad in [(10, 11, 1), (10, -1, 1), (10, 2, 0), (5, 1, 10)]:
        with pytest.raises(ValueError):
            pass_at_k(*bad)
    with pytest.raises(ValueError):
        mean_pass_at_k([], 1)


def _rows(counts: dict[str, int], n: int = 10) -> list[dict]:
    return [{"name": name, "n": n, "c": c} for name, c in counts.items()]


def test_paired_comparison_separates_a_real_gain_from_a_reshuffle():
    # Exact sign-test values: 5 gained, 0 lost -> 2 / 2**5; 3 vs 3 -> 1.
    assert math.isclose(paired.sign_test_p(5, 0), 2 / 32) and paired.sign_test_p(3, 3) == 1.0
    assert math.isclose(paired.sign_test_p(1, 9), 2 * 11 / 1024) and paired.sign_test_p(0, 0) == 1.0
    names = [f"p{i}" for i in range(200)]
    before = {name: (1 if i < 6 else 0) for i, name in enumerate(names)}
    # The same score drawn again: six other puzzles solved, none gained on balance.
    reshuffle = paired.compare(_rows(before), _rows({n: (1 if 6 <= i < 12 else 0) for i, n in enumerate(names)}))
    assert reshuffle["difference"] == 0 and reshuffle["sign_test_p"] == 1.0
    assert len(reshuffle["gained"]) == len(reshuffle["lost"]) == 6 and reshuffle["kept"] == 0
    low, high = reshuffle["interval"]
    assert low < 0 < high
    # Twenty puzzles gained, the six kept: the interval lies above zero and the test agrees.
    gain = paired.compare(_rows(before), _rows({n: (3 if i < 26 else 0) for i, n in enumerate(names)}))
    assert gain["gained"] == sorted(names[6:26]) and gain["lost"] == [] and gain["kept"] == 6
    assert gain["interval"][0] > 0 and gain["sign_test_p"] < 1e-5
    assert "+" in paired.summary(gain) and "puzzles gained 20, lost 0, kept 6" in paired.summary(gain)
    # Only shared puzzles are paired; none shared is an error, not a zero.
    assert paired.compare(_rows(before), _rows({"p0": 1, "other": 1}))["puzzles"] == 1
    with pytest.raises(ValueError, match="share no puzzle"):
        paired.compare(_rows({"a": 1}), _rows({"b": 1}))


def test_the_paired_interval_counts_the_draw_of_attempts_too():
    """Every puzzle at 5 of 10 before and after: resampling puzzles alone would say "exactly no
    change" (every difference is 0); a fresh draw of the ten attempts moves pass@1 either way."""
    rows = _rows({f"p{i}": 5 for i in range(50)})
    same = paired.compare(rows, rows, k=1)
    low, high = same["interval"]
    assert same["difference"] == 0 and low < -0.02 and high > 0.02
    assert paired.compare(rows, rows, k=1) == same  # seeded: the page shows the same interval every time


def test_a_per_task_score_is_paired_with_a_bootstrap_interval():
    from engine.evaluate.structure import structure_by_task

    rows = [{"task_id": "a", "samples": [{"structure": {"syntax_match": 0.2, "dataflow_match": None}},
                                         {"structure": {"syntax_match": 0.4, "dataflow_match": 1.0}}]},
            {"task_id": "b", "samples": [{"status": "no code"}]}]
    assert structure_by_task(rows) == {"syntax_match": {"a": pytest.approx(0.3)}, "dataflow_match": {"a": 1.0}}
    before = {f"t{i}": 0.3 for i in range(40)}
    up = paired.compare_scores(before, {name: 0.5 for name in before})
    assert round(up["difference"], 6) == 0.2 and up["interval"] == [pytest.approx(0.2)] * 2 and up["up"] == 40
    mixed = paired.compare_scores(before, {f"t{i}": 0.3 + (0.1 if i % 2 else -0.1) for i in range(40)})
    assert abs(mixed["difference"]) < 1e-9 and mixed["interval"][0] < 0 < mixed["interval"][1]
    assert (mixed["up"], mixed["down"]) == (20, 20)
    with pytest.raises(ValueError, match="share no task"):
        paired.compare_scores({"a": 1.0}, {"b": 1.0})


def test_compare_command_pairs_two_saved_results(tmp_path):
    import json
    import subprocess
    import sys

    def saved(name, counts, dataset="p3-test-3-seed0"):
        path = tmp_path / name
        path.write_text(json.dumps({"dataset": dataset, "per_puzzle": _rows(counts)}))
        return str(path)

    command = [sys.executable, "-m", "engine.evaluate", "compare"]
    before, after = saved("b.json", {"x": 0, "y": 1, "z": 0}), saved("a.json", {"x": 4, "y": 1, "z": 2})
    done = subprocess.run([*command, before, after, "--k", "10"], capture_output=True, text=True, check=True)
    result = json.loads(done.stdout)
    assert result["gained"] == ["x", "z"] and result["kept"] == 1 and result["sign_test_p"] == 0.5
    assert "puzzles gained 2, lost 0, kept 1" in done.stderr
    other = saved("o.json", {"x": 1}, dataset="p3-test-228")
    refused = subprocess.run([*command, before, other], capture_output=True, text=True)
    assert refused.returncode == 2 and "different sets" in refused.stderr

    # the suite's runs (`run … --out`) pair task by task, at pass@1 unless asked otherwise
    from engine.evaluate.suite.registry import get_benchmark

    def run_file(name, passed, benchmark="mbpp-sanitized", prompt="paper", finished=True, syntax=0.5):
        path = tmp_path / name
        rows = [{"task_id": str(t), "n": 1, "c": int(t in passed),
                 "samples": [{"structure": {"syntax_match": syntax + (t in passed) / 10, "dataflow_match": None}}]}
                for t in (11, 12, 13, 14)]
        result = {"settings": {"prompt": prompt, "n": 1}, "rows": rows}
        if finished:
            result["benchmark"] = get_benchmark(benchmark, BENCHMARK_DATA, prompt).describe()
        path.write_text(json.dumps(result))
        return str(path)

    base, tuned = run_file("base.json", {11, 12}), run_file("tuned.json", {12, 13, 14})
    done = subprocess.run([*command, base, tuned], capture_output=True, text=True, check=True)
    result = json.loads(done.stdout)
    assert result["k"] == 1 and result["gained"] == ["13", "14"] and result["lost"] == ["11"] and result["kept"] == 1
    assert round(result["difference"], 2) == 0.25 and "pass@1 +25.0 pts" in done.stderr
    assert "tasks gained 2, lost 1, kept 1" in done.stderr  # a suite run counts tasks, not puzzles
    # Syntax match is paired task by task too (0.6/0.6/0.5/0.5 -> 0.5/0.6/0.6/0.6); data-flow match,
    # which no sample has here, is left out rather than reported as 0.
    syntax = result["structure"]["syntax_match"]
    assert syntax["tasks"] == 4 and round(syntax["difference"], 3) == 0.025 and (syntax["up"], syntax["down"]) == (2, 1)
    assert "dataflow_match" not in result["structure"] and "syntax match 0.550 -> 0.575: +0.025" in done.stderr
    for wrong, says in ((run_file("m.json", {11}, benchmark="mbpp"), "different sets"),
                        (run_file("c.json", {11}, prompt="instruct"), "different sets"),
                        (run_file("u.json", {11}, finished=False), "names no benchmark"),
                        (before, "different sets")):
        refused = subprocess.run([*command, base, wrong], capture_output=True, text=True)
        assert refused.returncode == 2 and says in refused.stderr, refused.stderr


@pytest.mark.timeout(300)
def test_p3_command_evaluates_a_packaged_gguf_through_its_f16_copy():
    """A quantised evaluation says so and is asked for: by default the Q4_1 file is not what is measured."""
    import json
    import subprocess
    import sys

    command = [sys.executable, "-m", "engine.evaluate", "p3", "--model", "", "--backend", "llama.cpp",
               "--data", str(BENCHMARK_DATA / "p3"), "--subset", "1", "--samples", "1", "--max-tokens", "8"]
    full = subprocess.run(command, capture_output=True, text=True, timeout=280)
    assert full.returncode == 0, full.stderr[-2000:]
    assert json.loads(full.stdout)["quantization"] == "f16" and "(llama.cpp, f16)" in full.stderr
    assert json.loads(full.stdout)["precision"] == "f16"
    packaged = subprocess.run([*command, "--quantized"], capture_output=True, text=True, timeout=280)
    assert packaged.returncode == 0 and json.loads(packaged.stdout)["quantization"] == "q4_1"


class ReplayModel:
    """Answers each prompt with a known text: checks that prompts, cuts and verdicts line up."""
    name = "replay"

    def __init__(self, answer_for):
        self.answer_for = answer_for

    def sample_many(self, prompts, n, params, cancel=None):
        return [[Completion(self.answer_for(prompt), 3, "stop") for _ in range(n)] for prompt in prompts]


def test_held_out_sets_are_named_seeded_and_test_split_only():
    name, tests = held_out_puzzles(BENCHMARK_DATA / "p3")
    assert name == "p3-test-228" and len(tests) == 228 and {p.split for p in tests} == {"test"}
    assert len({p.problem for p in tests}) == 228
    name, subset = held_out_puzzles(BENCHMARK_DATA / "p3", subset=20, seed=3)
    assert name == "p3-test-20-seed3" and len(subset) == 20
    assert [p.name for p in subset] == [p.name for p in held_out_puzzles(BENCHMARK_DATA / "p3", 20, 3)[1]]
    assert [p.name for p in subset] != [p.name for p in held_out_puzzles(BENCHMARK_DATA / "p3", 20, 4)[1]]


def test_p3_harness_counts_reference_answers_as_solved():
    _, puzzles = held_out_puzzles(BENCHMARK_DATA / "p3", subset=12, seed=1)
    puzzles = [p for p in puzzles if p.solutions][:6]
    target = f"f{len(EXAMPLES) + 1}"
    bodies = {}
    for p in puzzles:  # the completion prompt ends inside g's body, its indentation opened
        body = min(p.solutions, key=len).split("\n", 1)[1]
        bodies[rename_function(p.sat, target, drop_docstring=True)] = body[4:] if body.startswith("    ") else body

    def answer(prompt):
        return next(body for puzzle, body in bodies.items() if puzzle in prompt)

    result = evaluate_p3(ReplayModel(answer), puzzles, P3EvalConfig(samples=3, timeout_s=5), verify, "six")
    assert result.solved == len(puzzles) == 6, result.per_puzzle
    assert result.pass_at_k == {"1": 1.0} and all(row["c"] == 3 for row in result.per_puzzle)
    wrong = evaluate_p3(ReplayModel(lambda prompt: "return None"), puzzles, P3EvalConfig(samples=2), verify)
    assert wrong.solved == 0 and wrong.pass_at_k == {"1": 0.0}


def test_humaneval_harness_counts_canonical_solutions_and_rejects_wrong_ones():
    problems = load_humaneval()[:5]
    assert len(load_humaneval()) == 164
    canonical = {p["prompt"]: p["canonical_solution"] for p in problems}
    right = evaluate_humaneval(ReplayModel(canonical.get), problems, verify)
    assert right.passed == 5 and right.pass_at_1 == 1.0
    wrong = evaluate_humaneval(ReplayModel(lambda prompt: "    return None\n"), problems, verify)
    assert wrong.passed == 0 and {row["status"] for row in wrong.per_problem} <= {"failed", "error"}


def test_humaneval_instruct_prompt_takes_the_replys_code_block():
    problems = load_humaneval()[:4]
    by_task = {p["task_id"]: p for p in problems}

    def answer(prompt):
        asked = prompt[0]["content"]
        problem = next(p for p in problems if p["prompt"].rstrip() in asked)
        if problem is problems[3]:
            return "I would rather explain it in words."
        return f"Here it is:\n```python\n{problem['prompt']}{problem['canonical_solution']}```\nDone."

    result = evaluate_humaneval(ReplayModel(answer), problems, verify, prompt="instruct")
    assert result.prompt == "instruct" and result.as_dict()["prompt"] == "instruct"
    assert [row["status"] for row in result.per_problem] == ["passed", "passed", "passed", "no code"]
    assert result.settings == {"temperature": 0.0, "max_tokens": 300, "timeout_s": 3.0} and by_task


def test_humaneval_completion_keeps_the_body_up_to_its_first_unindented_line():
    problem = load_humaneval()[0]
    body = problem["canonical_solution"] + "\n# the model goes on at the top level\nraise ValueError('not the body')\n"
    result = evaluate_humaneval(ReplayModel(lambda prompt: body), [problem], verify)
    assert result.passed == 1  # what follows the body is not run


def test_tiny_model_through_both_harnesses(tmp_path):
    model = TransformersModel.load(str(build_tiny_model(tmp_path / "tiny")))
    _, puzzles = held_out_puzzles(BENCHMARK_DATA / "p3", subset=3, seed=0)
    seen = []
    result = evaluate_p3(model, puzzles, P3EvalConfig(samples=2, max_tokens=8), verify, "tiny",
                         progress=lambda done, total: seen.append((done, total)), chunk=2)
    assert result.puzzles == 3 and seen == [(2, 3), (3, 3)] and result.tokens > 0
    assert 0.0 <= result.pass_at_k["1"] <= 1.0 and set(result.pass_at_k) == {"1"}
    he = evaluate_humaneval(model, load_humaneval()[:2], verify, max_tokens=8)
    assert he.problems == 2 and 0.0 <= he.pass_at_1 <= 1.0
    chat = evaluate_humaneval(model, load_humaneval()[:2], verify, max_tokens=8, prompt="instruct")
    assert chat.problems == 2 and chat.prompt == "instruct"
