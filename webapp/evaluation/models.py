"""Benchmark runs: one benchmark (engine/evaluate/suite) on one model version, with every task's
samples and verdicts stored as the run goes, so a killed worker loses one chunk at most."""
from __future__ import annotations

from django.db import models

from webapp.core.runs import BackgroundRun


class BenchmarkRun(BackgroundRun):
    NOUN = "benchmark run"

    benchmark = models.CharField(max_length=40)  # a name in engine.evaluate.suite.registry
    version = models.ForeignKey("serving.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL,
                                related_name="benchmark_runs")
    # A packaged model (engine/lm/packaged_models.py) evaluated beside the versions, such as a larger
    # Qwen2.5-Coder to compare the students against; "" for a model version.
    packaged = models.CharField(max_length=80, blank=True)
    model_info = models.JSONField(default=dict, blank=True)  # name, backend, quantization, spec
    tasks_total = models.PositiveIntegerField(default=0)
    tasks_done = models.PositiveIntegerField(default=0)
    summary = models.JSONField(default=dict, blank=True)  # pass_at_k, interval, parts, solved, tokens, seconds

    class Meta(BackgroundRun.Meta):
        indexes = [models.Index(fields=["benchmark", "status"])]

    @property
    def fraction(self) -> float:
        if self.status == self.Status.SUCCEEDED:
            return 1.0
        return self.tasks_done / self.tasks_total if self.tasks_total else 0.0

    @property
    def model_label(self) -> str:
        """What the run evaluated, as its pages name it."""
        if self.packaged:
            from engine.lm.packaged_models import PACKAGED

            known = PACKAGED.get(self.packaged)
            return f"{known.display_name if known else self.packaged} (packaged)"
        return self.version.name if self.version else "a deleted version"

    @property
    def prompt(self) -> str:
        return (self.config or {}).get("prompt", "")

    def __str__(self) -> str:
        return f"{self.benchmark} run {self.pk}"


class BenchmarkTask(models.Model):
    """One task's samples in a run: each sample's text, program, status and per-check verdicts."""

    run = models.ForeignKey(BenchmarkRun, on_delete=models.CASCADE, related_name="task_rows")
    task_id = models.CharField(max_length=120)
    position = models.PositiveIntegerField(default=0)  # the task's place in the benchmark
    n = models.PositiveIntegerField()
    c = models.PositiveIntegerField()
    parts = models.JSONField(default=dict, blank=True)
    samples = models.JSONField(default=list)

    class Meta:
        ordering = ["run", "position"]
        constraints = [models.UniqueConstraint(fields=["run", "task_id"], name="one_row_per_task")]

    def as_row(self) -> dict:
        return {"task_id": self.task_id, "n": self.n, "c": self.c, "parts": self.parts, "samples": self.samples}
