"""engine/evaluate/suite: the shared runner (sampling, programs, sandbox verdicts, pass@k with its
interval, resume, cancel) and the P3 and HumanEval classes, through the real sandbox. A replaying
model gives answers whose verdicts are known; the command line runs the packaged model."""
import json
import subprocess
import sys

import pytest

from engine.config import ConfigError
from engine.evaluate.suite.registry import get_benchmark, names
from engine.evaluate.suite.runner import RunSettings, check_programs, check_references, run_benchmark
from engine.lm.generation import CancelToken, Completion
from engine.sandbox import verify_many
from tests.support import BENCHMARK_DATA


def verify(jobs):
    return verify_many(jobs)


class ReplayModel:
    """Answers with `answers[i % len(answers)]` for the i-th sample of every prompt; records prompts."""
    name, backend, quantization, device = "replay", "replay", "none", "cpu"
    tokenizer = None

    def __init__(self, answer_for):
        self.answer_for = answer_for
        self.prompts = []

    def sample_many(self, prompts, n, params, cancel=None):
        self.prompts += prompts
        return [[Completion(self.answer_for(prompt, i), 5, "stop") for i in range(n)] for prompt in prompts]


def humaneval_reply(benchmark, correct_ids):
    by_prompt = {task.data["prompt"].rstrip(): task for task in benchmark.tasks()}

    def answer(prompt, i):
        code = prompt[0]["content"].split("```python\n", 1)[1].rsplit("\n```", 1)[0]
        task = by_prompt[code]
        body = task.data["canonical_solution"] if task.task_id in correct_ids and i % 2 == 0 else "    return None\n"
        return f"Here it is:\n```python\n{task.data['prompt']}{body}```\n"
    return answer


def test_every_benchmark_is_registered_and_its_references_pass():
    assert {"p3", "humaneval"} <= set(names())
    assert check_references(get_benchmark("humaneval", BENCHMARK_DATA), verify) == []
    p3 = get_benchmark("p3", BENCHMARK_DATA)
    failing = check_references(p3, verify)
    assert len(p3.tasks()) == 228
    # two of P3's own reference solutions fail its 1 s judge here (slow or very large answers)
    known = {"Mastermind:0", "ExponentialCoinMoves:0"}
    # others near the limit (AllPandigitalSquares:0 takes ~0.4 s) may time out on a loaded machine:
    # they must be timeouts, and pass with time to spare; a wrong reference fails either way
    late = [row for row in failing if row["task_id"] not in known]
    assert all(row["status"] == "timeout" for row in late), late
    tasks = [task for task in p3.tasks() if task.task_id in {row["task_id"] for row in late}]
    assert [row["status"] for row in check_programs(p3, [(t, p3.reference(t)) for t in tasks], 20, verify)] \
        == ["passed"] * len(tasks)


def test_runner_scores_samples_and_keeps_each_one():
    benchmark = get_benchmark("humaneval", BENCHMARK_DATA)
    first = [t.task_id for t in benchmark.tasks()[:4]]
    model = ReplayModel(humaneval_reply(benchmark, set(first[:2])))
    settings = RunSettings(n=4, temperature=0.8, limit=4, ks=(1, 2, 4))
    result = run_benchmark(benchmark, model, settings, verify)
    assert result.complete and result.done == 4 and result.solved == 2
    assert [row["c"] for row in result.rows] == [2, 2, 0, 0] and all(row["n"] == 4 for row in result.rows)
    assert result.pass_at_k == {"1": 0.25, "2": round((1 - 1 / 6) / 2, 4), "4": 0.5}
    low, high = result.interval["1"]
    assert 0 <= low <= 0.25 <= high <= 1 and high > low
    sample = result.rows[0]["samples"][1]
    assert sample["status"] == "failed" and "return None" in sample["program"] and sample["checks"]["tests"]
    assert result.settings["prompt"] == "instruct" and result.settings["top_p"] == 1.0
    assert result.model["backend"] == "replay"
    json.dumps(result.as_dict())  # storable as it is


def test_the_three_execution_rates_count_what_each_sample_did():
    """The RLCF paper's rates, from the sandbox's verdicts: parses, runs without an error, passes."""
    benchmark = get_benchmark("humaneval", BENCHMARK_DATA)
    task = benchmark.tasks()[0]
    replies = [
        "I cannot write that.",  # no code
        "```python\ndef has_close_elements(numbers, threshold)\n    return True\n```",  # syntax error
        "```python\ndef has_close_elements(numbers, threshold):\n    return 1 / 0\n```",  # runtime error
        "```python\ndef has_close_elements(numbers, threshold):\n    while True:\n        pass\n```",  # timeout
        "```python\ndef has_close_elements(numbers, threshold):\n    return None\n```",  # runs, fails a test
        f"```python\n{task.data['prompt']}{task.data['canonical_solution']}```",  # passes
    ]
    model = ReplayModel(lambda prompt, i: replies[i])
    result = run_benchmark(benchmark, model, RunSettings(n=6, temperature=0.8, limit=1, ks=(1,), timeout_s=1.0),
                           verify)
    statuses = [sample["status"] for sample in result.rows[0]["samples"]]
    assert statuses == ["no code", "error", "error", "timeout", "failed", "passed"], statuses
    assert result.rates == {"compiles": round(4 / 6, 4), "runs": round(2 / 6, 4), "passes": round(1 / 6, 4)}
    assert result.as_dict()["rates"] == result.rates


def test_runner_resumes_and_cancels():
    benchmark = get_benchmark("humaneval", BENCHMARK_DATA)
    answer = humaneval_reply(benchmark, {t.task_id for t in benchmark.tasks()[:3]})
    stored = []
    first = run_benchmark(benchmark, ReplayModel(answer), RunSettings(limit=2), verify, on_task=stored.append)
    assert [row["task_id"] for row in stored] == ["HumanEval/0", "HumanEval/1"]
    model = ReplayModel(answer)
    resumed = run_benchmark(benchmark, model, RunSettings(limit=3), verify, done={r["task_id"]: r for r in stored})
    assert len(model.prompts) == 1 and resumed.done == 3 and resumed.solved == 3 and first.solved == 2
    cancel = CancelToken()
    cancel.cancel()
    stopped = run_benchmark(benchmark, ReplayModel(answer), RunSettings(limit=3), verify, cancel=cancel)
    assert stopped.cancelled and stopped.done == 0 and not stopped.complete


def test_settings_take_the_benchmarks_defaults_and_refuse_bad_values():
    p3 = get_benchmark("p3", BENCHMARK_DATA)
    settings = RunSettings().resolved(p3)
    assert (settings.n, settings.temperature, settings.top_k, settings.max_tokens, settings.timeout_s) == \
        (10, 0.8, 50, 150, 1.0)
    with pytest.raises(ConfigError) as error:
        RunSettings(n=5, temperature=0.0, prompt="nope").resolved(p3)
    assert set(error.value.errors) == {"n", "prompt"}


def test_p3_prompt_program_and_judge():
    p3 = get_benchmark("p3", BENCHMARK_DATA, prompt="completion")
    task = p3.tasks()[0]
    reference = p3.reference(task)
    body = reference.split("\n", 1)[1]
    model = ReplayModel(lambda prompt, i: body if i == 0 else "    return 'nothing'\n")
    result = run_benchmark(p3, model, RunSettings(n=2, limit=1, ks=(1, 2)), verify)
    assert isinstance(model.prompts[0], str) and model.prompts[0].rstrip().endswith(":")
    assert result.rows[0]["c"] == 1 and result.pass_at_k == {"1": 0.5, "2": 1.0}


@pytest.mark.timeout(600)
def test_the_command_line_runs_a_benchmark_on_the_packaged_model(tmp_path):
    out = tmp_path / "he.json"
    command = [sys.executable, "-m", "engine.evaluate", "run", "humaneval", "--limit", "2", "--max-tokens", "64",
               "--data", str(BENCHMARK_DATA), "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=540)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["done"] == 2 and result["model"]["quantization"] == "f16"  # never the Q4_1 file itself
    assert result["model"]["backend"] == "llama.cpp" and result["settings"]["max_tokens"] == 64
    assert result["model"]["precision"] == "f16" and result["model"]["device"] == "cpu"
    assert "pass@k" in done.stderr and "(llama.cpp, f16)" in done.stderr
    resumed = subprocess.run(command + ["--resume", str(out)], capture_output=True, text=True, timeout=540)
    assert resumed.returncode == 0 and json.loads(out.read_text())["rows"] == result["rows"]
    # A run of the first 2 tasks goes on to 3: the two rows are kept, one task is added.
    more = tmp_path / "he3.json"
    longer = [part if part != str(out) else str(more) for part in command]
    longer[longer.index("--limit") + 1] = "3"
    extended = subprocess.run(longer + ["--resume", str(out)], capture_output=True, text=True, timeout=540)
    assert extended.returncode == 0, extended.stderr[-2000:]
    rows = json.loads(more.read_text())["rows"]
    assert len(rows) == 3 and rows[:2] == result["rows"] and json.loads(more.read_text())["done"] == 3
    other = subprocess.run([*command, "--max-tokens", "32", "--resume", str(out)], capture_output=True, text=True)
    assert other.returncode == 2 and "only --limit may differ" in other.stderr
