"""The whole self-improvement loop, headless, through the same services as the site:
(bootstrap: import P3, verify its train-split reference solutions, and optionally add verified new
instances of those puzzles) → per round: self-play
generation run (generate → filter → solve → verify) → training round (fine-tune → evaluate before
and after → promote if better) → the report benchmarks (test sets) on each promoted version and its
start. Returns the report's data; `report.py` writes it out."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable

from django.conf import settings

from engine.evaluate import paired
from engine.lm.throughput import tokens_per_s
from webapp.evaluation import benchmark_runs
from webapp.evaluation.models import BenchmarkRun
from webapp.puzzles.catalogue import add_search_solutions, add_variants, import_p3, verify_references
from webapp.puzzles.generation_runs import run_inline, start_run
from webapp.puzzles.models import GenerationRun
from webapp.serving import versions
from webapp.serving.model_runtime import Served, close_model
from webapp.serving.models import ModelVersion
from webapp.training import rounds, training_data
from webapp.training.models import TrainingRun, code_result
from webapp.training.rounds import RoundConfig

Event = Callable[[str, int, int], None]  # (stage, done, total) for progress bars


class _ActiveModel:
    """The active version's model and its id, loaded once per version at full precision (on a CPU,
    llama.cpp serves the GGUF base's f16 or bf16 copy: model_store.load_batch_version): the puzzles
    and solutions it writes are kept. Called for the model; closed when generation ends, so training
    and evaluation run without it in memory."""

    def __init__(self, backend: str):
        self.backend = backend
        self.served: Served | None = None

    def __call__(self) -> Served:
        from webapp.serving.model_store import load_batch_version

        version = versions.active_version()
        if self.served is None or self.served.version_id != version.pk:
            self.close()
            self.served = Served(load_batch_version(version.spec, self.backend), version.pk)
        return self.served

    def close(self) -> None:
        if self.served is not None:
            close_model(self.served.model)
            self.served = None


def bootstrap(variants: int = 0, search: bool = False) -> dict:
    started = time.perf_counter()
    imported = import_p3(settings.AUTODIDACT_BENCHMARK_DATA / "p3")
    checked = verify_references()
    report = {**imported, "references": checked}
    if variants:
        report["variants"] = {**add_variants(variants), **verify_references()}
    if search:
        report["search"] = add_search_solutions()
    return {**report, "seconds": round(time.perf_counter() - started, 1)}


def _generation(config: dict, get_model, on_event: Event) -> dict:
    """One generation run. Its seed moves on with each run the data folder holds: a round whose
    version was not promoted would otherwise have the same model write the same puzzles again."""
    config = {**config, "seed": config.get("seed", 0) + GenerationRun.objects.count()}
    run = start_run(None, config)
    started = time.perf_counter()

    def step(current):
        on_event("generate", current.batches_done, current.batches)

    run = run_inline(run, get_model, step)
    timings = {stage: {**t, "tokens_per_s": tokens_per_s(t["tokens"], t["seconds"])}
               for stage, t in (run.timings or {}).items()}
    return {"run": run.pk, "status": run.status, "counts": run.counts, "timings": timings, "error": run.error,
            "wall_s": round(time.perf_counter() - started, 1)}


def _training(config: dict, on_event: Event) -> TrainingRun:
    run = rounds.start_round(None, config, trigger=TrainingRun.Trigger.SELFPLAY, enqueue=False)
    worker = threading.Thread(target=rounds.run_round, args=(run.pk,), name=f"round-{run.pk}")
    worker.start()
    while worker.is_alive():
        worker.join(2.0)
        run.refresh_from_db()
        progress = run.progress or {}
        if run.stage == "train":
            on_event("train", progress.get("step", 0), progress.get("max_steps") or 0)
        elif run.stage in ("eval-before", "eval-after"):
            on_event(run.stage, progress.get("done", 0), progress.get("total") or 0)
    run.refresh_from_db()
    steps = (run.training or {}).get("steps", 0)
    on_event("train", steps, steps)  # the last poll may have come before the end
    return run


def _round_number(run: TrainingRun) -> int:
    """Rounds are numbered across the data folder's history, not per command: a second
    `selfplay` call that goes on from the first reports its round as round 2."""
    return TrainingRun.objects.filter(pk__lte=run.pk).count()


def _round_row(number: int, generation: dict, run: TrainingRun) -> dict:
    before, after = run.eval_before or {}, run.eval_after or {}
    version = getattr(run, "produced_version", None)
    return {"round": number, "generation": generation, "training_run": run.pk, "status": run.status,
            "examples": run.examples, "dataset": {k: len(v) for k, v in (run.dataset or {}).items()},
            "dataset_hash": run.dataset_hash, "training": {k: v for k, v in (run.training or {}).items()
                                                           if k != "loss_curve"},
            "before": _scores(before), "after": _scores(after), "decision": run.decision, "error": run.error,
            "paired": paired.compare_results(before.get("p3"), after.get("p3"), (run.config or {}).get("metric_k", 10)),
            "version": version.name if version else None, "candidates": list(run.candidates or [])}


def _scores(evaluation: dict) -> dict:
    p3, humaneval, chat = evaluation.get("p3") or {}, code_result(evaluation), evaluation.get("code_chat") or {}
    return {"model": evaluation.get("model"), "dataset": p3.get("dataset"), "pass_at_k": p3.get("pass_at_k", {}),
            "solved": p3.get("solved"), "puzzles": p3.get("puzzles"), "p3_seconds": p3.get("seconds"),
            "p3_tokens_per_s": p3.get("tokens_per_s"), "code_benchmark": humaneval.get("benchmark", "humaneval"),
            "code_pass_at_1": humaneval.get("pass_at_1"),
            "code_chat_pass_at_1": chat.get("pass_at_1"), "code_chat_seconds": chat.get("seconds"),
            "code_chat_tokens_per_s": chat.get("tokens_per_s"),
            "code_seconds": humaneval.get("seconds"), "code_tokens_per_s": humaneval.get("tokens_per_s"),
            "seconds": evaluation.get("seconds"), "reused": bool(evaluation.get("reused"))}


def _test_reports(runs: list[TrainingRun], start: ModelVersion) -> list[dict]:
    """The report benchmarks (test sets: reported, never selected on) on each version the loop
    promoted, beside its start version under the same settings, paired task by task. A promoted
    round queues them, but a headless command has no worker to take them, so they run here; one a
    worker took already stays with it, and its row says how far it is."""
    rows = []
    for run in runs:
        version = ModelVersion.objects.filter(pk=run.produced_version_id).first()  # as the round left it
        if version is None or version.promoted_at is None:
            continue
        names = RoundConfig.from_dict(run.config).report_list()
        for queued in BenchmarkRun.objects.filter(version=version, benchmark__in=names).order_by("pk"):
            done = benchmark_runs.run_here(queued) if queued.status == BenchmarkRun.Status.QUEUED else queued
            finished = done.status == BenchmarkRun.Status.SUCCEEDED
            before, reused = benchmark_runs.like_run(done.benchmark, start, done.config) if finished else (None, False)
            rows.append({"benchmark": done.benchmark, "prompt": done.prompt, "tasks": done.tasks_done,
                         "after": _run_scores(done), "before": {**_run_scores(before), "reused": reused} if before else None,
                         "paired": benchmark_runs.paired_runs(before, done) if before else None})
    return rows


def _run_scores(run: BenchmarkRun) -> dict:
    summary = run.summary or {}
    return {"version": run.version.name if run.version else "", "run": run.pk, "status": run.status,
            "pass_at_k": summary.get("pass_at_k", {}), "parts": summary.get("parts", {}),
            "seconds": summary.get("seconds")}


def run_loop(round_count: int, generation_config: dict, round_config: dict, with_bootstrap: bool = True,
             backend: str = "auto", on_event: Event = lambda stage, done, total: None, variants: int = 0,
             search: bool = False) -> dict:
    started = time.perf_counter()
    report = {"rounds": [], "settings": {"rounds": round_count, "generation": generation_config,
                                         "round": round_config, "bootstrap": with_bootstrap, "variants": variants,
                                         "search": search}}
    if with_bootstrap:
        on_event("bootstrap", 0, 1)
        report["bootstrap"] = bootstrap(variants, search)
        on_event("bootstrap", 1, 1)
    start, runs = versions.active_version(), []
    report["start_version"] = start.name
    get_model = _ActiveModel(backend)
    for _ in range(round_count):
        try:
            generation = _generation(generation_config, get_model, on_event) if generation_config.get("batches") else {}
        finally:
            get_model.close()
        report["examples_available"] = len(training_data.collect(
            tuple(round_config.get("sources", training_data.DEFAULT_SOURCES)), round_config.get("data", "all"))[0])
        run = _training(round_config, on_event)
        runs.append(run)
        report["rounds"].append(_round_row(_round_number(run), generation, run))
        if run.status != TrainingRun.Status.SUCCEEDED:
            break
    report["end_version"] = versions.active_version().name
    report["test_benchmarks"] = _test_reports(runs, start)
    report["wall_s"] = round(time.perf_counter() - started, 1)
    return report
