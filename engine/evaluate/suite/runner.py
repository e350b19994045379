"""Run one benchmark on one model: sample n answers per task, turn each into a program, check it in
the sandbox, and score pass@k, keeping every sample, its program and its verdicts.

A run is resumable (rows already done are passed in and skipped), cancellable between chunks, and
reports each finished task as it goes, so a caller can store rows before the next chunk starts.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field

from engine.config import Problems, StrictConfig, check_sampling
from engine.evaluate.pass_at_k import mean_pass_at_k, pass_at_k_interval, report_ks
from engine.evaluate.structure import mean_structure, structure
from engine.evaluate.suite.base import Benchmark, Task
from engine.lm.generation import CancelToken, SamplingParams
from engine.lm.throughput import tokens_per_s

Verify = Callable[[list[dict]], Iterable]
NO_CODE = "no code"


@dataclass(frozen=True)
class RunSettings(StrictConfig):
    """What a run samples and checks with; recorded with every result. Zero/empty fields take the
    benchmark's defaults (`resolved`)."""

    KIND = "benchmark settings"

    prompt: str = ""
    n: int = 0
    temperature: float = -1.0  # < 0: the benchmark's default
    top_k: int = -1
    top_p: float = 0.0
    max_tokens: int = 0
    timeout_s: float = 0.0
    seed: int = 0
    limit: int = 0  # only the first `limit` tasks (0: all)
    ks: tuple[int, ...] = (1, 10, 100)

    @classmethod
    def _convert(cls, data: dict) -> dict:
        if "ks" in data:
            data["ks"] = tuple(int(k) for k in data["ks"])
        return data

    def resolved(self, benchmark: Benchmark) -> RunSettings:
        """Every default filled from the benchmark; raises ConfigError on a bad value."""
        d = benchmark.defaults
        settings = RunSettings(
            prompt=self.prompt or benchmark.prompt_name, n=self.n or d.n,
            temperature=d.temperature if self.temperature < 0 else self.temperature,
            top_k=d.top_k if self.top_k < 0 else self.top_k, top_p=self.top_p or d.top_p,
            max_tokens=self.max_tokens or d.max_tokens, timeout_s=self.timeout_s or d.timeout_s,
            seed=self.seed, limit=self.limit, ks=self.ks)
        settings.check(benchmark)
        return settings

    def check(self, benchmark: Benchmark) -> None:
        problems = Problems()
        if self.prompt not in benchmark.prompts:
            problems.add("prompt", f"prompt must be one of {', '.join(benchmark.prompts)} for {benchmark.name}")
        if self.n < 1:
            problems.add("n", "n must be at least 1")
        if self.temperature == 0 and self.n > 1:
            problems.add("n", "n must be 1 at temperature 0 (greedy decoding gives one answer)")
        if not 0 <= self.temperature <= 2:
            problems.add("temperature", "temperature must be between 0 and 2")
        if self.max_tokens < 1:
            problems.add("max_tokens", "max_tokens must be at least 1")
        if self.timeout_s <= 0:
            problems.add("timeout_s", "timeout_s must be above 0")
        if self.limit < 0:
            problems.add("limit", "limit must be at least 0")
        if not self.ks or min(self.ks) < 1:
            problems.add("ks", "every k of pass@k must be at least 1")
        check_sampling(problems, self.top_k, self.top_p)
        problems.raise_any()

    def params(self, benchmark: Benchmark) -> SamplingParams:
        return SamplingParams(max_new_tokens=self.max_tokens, temperature=self.temperature, top_k=self.top_k,
                              top_p=self.top_p, stop=benchmark.stops(), seed=self.seed)


@dataclass
class BenchmarkResult:
    benchmark: dict  # name, title, split, prompt, data
    model: dict  # name, backend, quantization, version (what the caller knows)
    settings: dict
    tasks: int  # tasks in the run (after `limit`)
    done: int  # tasks with a row
    pass_at_k: dict[str, float]  # {"1": 0.41}
    interval: dict[str, list[float]]  # {"1": [0.34, 0.49]}: 95% bootstrap
    parts: dict[str, dict[str, float]]  # {"base": {"1": 0.45}}: pass@k of each named check alone
    solved: int
    tokens: int = 0
    seconds: float = 0.0
    cancelled: bool = False
    structure: dict[str, float] = field(default_factory=dict)  # mean syntax / data-flow match to the reference
    rows: list[dict] = field(default_factory=list)
    rates: dict[str, float] = field(default_factory=dict)  # execution_rates: compiles / runs / passes

    @property
    def complete(self) -> bool:
        return self.done == self.tasks and not self.cancelled

    def as_dict(self) -> dict:
        return {**asdict(self), "complete": self.complete, "tokens_per_s": tokens_per_s(self.tokens, self.seconds)}


def score(rows: list[dict], ks: Iterable[int], part_names: Iterable[str] = ()) -> tuple[dict, dict, dict]:
    """pass@k, its interval, and each named part's pass@k, over `rows` (the ks every row's n allows)."""
    if not rows:
        return {}, {}, {}
    counts = [(row["n"], row["c"]) for row in rows]
    usable = report_ks(min(n for n, _ in counts), ks)
    scores = {str(k): round(mean_pass_at_k(counts, k), 4) for k in usable}
    interval = {str(k): [round(x, 4) for x in pass_at_k_interval(counts, k)] for k in usable}
    parts = {name: {str(k): round(mean_pass_at_k([(row["n"], row["parts"].get(name, 0)) for row in rows], k), 4)
                    for k in usable} for name in part_names}
    return scores, interval, parts


def execution_rates(rows: list[dict]) -> dict[str, float]:
    """The RLCF paper's three rates over every sample: its program parses (there is code and the
    sandbox found no syntax error), it runs without an error (passed, or a test assertion failed:
    no exception, timeout or crash), and it passes every test."""
    samples = [sample for row in rows for sample in row["samples"]]
    if not samples:
        return {}

    def parses(sample):
        return sample["status"] != NO_CODE and not any(
            check.get("detail", "").startswith("syntax error") for check in sample.get("checks", {}).values())

    counts = {"compiles": sum(map(parses, samples)),
              "runs": sum(sample["status"] in ("passed", "failed") for sample in samples),
              "passes": sum(sample["status"] == "passed" for sample in samples)}
    return {name: round(count / len(samples), 4) for name, count in counts.items()}


def task_row(benchmark: Benchmark, task: Task, samples: list[dict]) -> dict:
    """One task's record: its samples (text, program, verdicts) and the counts pass@k needs."""
    parts: dict[str, int] = {}
    for sample in samples:
        for name, check in sample["checks"].items():
            parts[name] = parts.get(name, 0) + (check["status"] == "passed")
    return {"task_id": task.task_id, "n": len(samples), "c": sum(s["status"] == "passed" for s in samples),
            "parts": parts, "samples": samples}


def check_programs(benchmark: Benchmark, items: list[tuple[Task, str | None]], timeout_s: float,
                   verify: Verify) -> list[dict]:
    """Verdicts for (task, program) pairs, in order: {"status", "checks": {part: {status, detail}}}.
    One `verify` call for all of them, so the sandbox runs them in parallel."""
    jobs = []
    for index, (task, program) in enumerate(items):
        if program is None:
            continue
        for part, job in benchmark.checks(task, program, timeout_s).items():
            jobs.append({**job, "id": f"{index}/{part}", "timeout_s": job.get("timeout_s", timeout_s)})
    found: dict[int, dict[str, dict]] = {}
    for verdict in verify(jobs):
        verdict = verdict if isinstance(verdict, dict) else verdict.as_dict()
        index, _, part = str(verdict["id"]).partition("/")
        found.setdefault(int(index), {})[part] = {"status": verdict["status"], "detail": verdict.get("detail", "")}
    results = []
    for index, (_task, program) in enumerate(items):
        checks = found.get(index, {})
        if program is None:
            status = NO_CODE
        else:
            failing = [c["status"] for c in checks.values() if c["status"] != "passed"]
            status = failing[0] if failing else ("passed" if checks else "error")
        results.append({"status": status, "checks": checks})
    return results


# Tasks sampled in one request: with the llama.cpp decoder's refill, 32 decode 1.34x as fast as 8
# (benchmarks/batch_waves.py --case code-check); a killed worker loses one request's tasks at most.
TASKS_PER_REQUEST = 32


def run_benchmark(benchmark: Benchmark, model, settings: RunSettings, verify: Verify, model_info: dict | None = None,
                  done: dict[str, dict] | None = None, on_task: Callable[[dict], None] | None = None,
                  progress: Callable[[int, int], None] | None = None, cancel: CancelToken | None = None,
                  chunk: int = TASKS_PER_REQUEST) -> BenchmarkResult:
    """Evaluate `model` on `benchmark`; `done` maps task ids to rows of an earlier, interrupted run."""
    settings = settings.resolved(benchmark)
    tasks = benchmark.tasks()[:settings.limit or None]
    rows = {task_id: row for task_id, row in (done or {}).items()}
    benchmark.prepare(model)
    params = settings.params(benchmark)
    tokenizer = getattr(model, "tokenizer", None)
    started, tokens = time.perf_counter(), 0
    todo = [task for task in tasks if task.task_id not in rows]
    for start in range(0, len(todo), chunk):
        if cancel is not None and cancel.cancelled:
            break
        group = todo[start:start + chunk]
        prompts = [benchmark.prompt(task, tokenizer) for task in group]
        outputs = model.sample_many(prompts, settings.n, params, cancel)
        if cancel is not None and cancel.cancelled:
            break
        items = []
        for task, given, completions in zip(group, prompts, outputs):
            for completion in completions:
                tokens += completion.tokens
                items.append((task, benchmark.program(task, completion.text, given)))
        verdicts = iter(check_programs(benchmark, items, settings.timeout_s, verify))
        position = 0
        for task, completions in zip(group, outputs):
            samples = []
            for completion in completions:
                program = items[position][1]
                samples.append({"text": completion.text, "tokens": completion.tokens,
                                "finish": completion.finish_reason, "program": program, **next(verdicts),
                                **structure_of(benchmark, task, program)})
                position += 1
            row = task_row(benchmark, task, samples)
            rows[task.task_id] = row
            if on_task:
                on_task(row)
        if progress:
            progress(sum(task.task_id in rows for task in tasks), len(tasks))
    ordered = [rows[task.task_id] for task in tasks if task.task_id in rows]
    scores, interval, parts = score(ordered, settings.ks, benchmark.parts)
    return BenchmarkResult(benchmark.describe(), model_info or describe_model(model), settings.as_dict(), len(tasks),
                           len(ordered), scores, interval, parts, sum(1 for row in ordered if row["c"]), tokens,
                           round(time.perf_counter() - started, 1), bool(cancel is not None and cancel.cancelled),
                           mean_structure([s for row in ordered for s in row["samples"]]), ordered,
                           execution_rates(ordered))


def rescore(benchmark: Benchmark, result: dict, verify: Verify) -> dict:
    """An earlier result's samples checked again with today's program building and checks (a
    harness fix measured on the same samples, without generating again). Instruct replies are
    rebuilt from their text; a completion's stored program is kept (its prompt needs a tokenizer)."""
    settings = RunSettings.from_dict(result["settings"])
    tasks = {task.task_id: task for task in benchmark.tasks()}
    items, owners = [], []
    rebuilt = settings.prompt == "instruct"
    for row in result["rows"]:
        task = tasks[row["task_id"]]
        for sample in row["samples"]:
            items.append((task, benchmark.program(task, sample["text"], "") if rebuilt else sample["program"]))
            owners.append((row, sample))
    verdicts = check_programs(benchmark, items, settings.timeout_s, verify)
    samples: dict[str, list[dict]] = {}
    for (row, sample), (task, program), verdict in zip(owners, items, verdicts):
        samples.setdefault(row["task_id"], []).append({**sample, "program": program, **verdict,
                                                       **structure_of(benchmark, task, program)})
    rows = [task_row(benchmark, tasks[task_id], found) for task_id, found in samples.items()]
    scores, interval, parts = score(rows, settings.ks, benchmark.parts)
    return {**result, "pass_at_k": scores, "interval": interval, "parts": parts,
            "solved": sum(1 for row in rows if row["c"]), "rows": rows,
            "structure": mean_structure([s for row in rows for s in row["samples"]]),
            "rates": execution_rates(rows),
            "rescored": {"before": {"pass_at_k": result.get("pass_at_k"), "parts": result.get("parts")}}}


def structure_of(benchmark: Benchmark, task: Task, program: str | None) -> dict:
    """{"structure": {syntax_match, dataflow_match}} of a sample, for a benchmark that reports it."""
    if not benchmark.structural:
        return {}
    return {"structure": structure(program, benchmark.reference(task))}


def describe_model(model) -> dict:
    """What a result must say about the model it measured (the caller adds the version)."""
    return {"name": getattr(model, "name", "?"), "backend": getattr(model, "backend", "?"),
            "quantization": getattr(model, "quantization", "?"), "precision": getattr(model, "precision", "?"),
            "device": getattr(model, "device", "?")}


def check_references(benchmark: Benchmark, verify: Verify, timeout_s: float | None = None,
                     limit: int = 0) -> list[dict]:
    """The benchmark's checks run on its own reference solutions: rows of tasks whose reference fails
    (a harness or dataset problem to list, never a model's fault)."""
    tasks = [task for task in benchmark.tasks()[:limit or None] if benchmark.reference(task) is not None]
    verdicts = check_programs(benchmark, [(task, benchmark.reference(task)) for task in tasks],
                              timeout_s or benchmark.defaults.timeout_s, verify)
    return [{"task_id": task.task_id, **verdict} for task, verdict in zip(tasks, verdicts)
            if verdict["status"] != "passed"]
