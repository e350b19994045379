"""Teacher traces for distillation: a trace run asks a teacher for k traces (reasoning, then code)
per task and keeps the ones the sandbox passes; reviewers accept or reject kept traces, and a
`distill` round learns from the kept traces nobody rejected."""
from __future__ import annotations

from django.conf import settings
from django.db import models

from webapp.core.runs import BackgroundRun


class TraceRun(BackgroundRun):
    NOUN = "trace run"

    teacher_info = models.JSONField(default=dict, blank=True)  # name, backend, quantization, endpoint or file
    tasks_total = models.PositiveIntegerField(default=0)
    tasks_done = models.PositiveIntegerField(default=0)
    summary = models.JSONField(default=dict, blank=True)  # asked, kept, tasks with a trace, counts by status

    @property
    def fraction(self) -> float:
        if self.status == self.Status.SUCCEEDED:
            return 1.0
        return self.tasks_done / self.tasks_total if self.tasks_total else 0.0

    def __str__(self) -> str:
        return f"Trace run {self.pk}"


class TraceQuerySet(models.QuerySet):
    def trainable(self):
        """What a distill round learns from: kept by the sandbox, not rejected by a reviewer."""
        return self.filter(kept=True).exclude(review=Trace.Review.REJECTED)


class Trace(models.Model):
    class Review(models.TextChoices):
        PENDING = "pending"
        ACCEPTED = "accepted"
        REJECTED = "rejected"

    run = models.ForeignKey(TraceRun, on_delete=models.CASCADE, related_name="traces")
    task_id = models.CharField(max_length=80)
    source = models.CharField(max_length=80)  # "mbpp:612", "p3:Study_1:0", "chat:7"
    kind = models.CharField(max_length=8, default="tests")  # "tests" or "puzzle"
    sample = models.PositiveSmallIntegerField(default=0)
    prompt = models.JSONField(default=list)  # the messages the teacher was asked with
    reply = models.TextField(blank=True)
    reasoning = models.TextField(blank=True)
    code = models.TextField(blank=True)
    status = models.CharField(max_length=24)  # the sandbox's verdict, or "no code" / "no reasoning"
    detail = models.TextField(blank=True)
    tokens = models.PositiveIntegerField(default=0)
    kept = models.BooleanField(default=False)
    review = models.CharField(max_length=10, choices=Review.choices, default=Review.PENDING)
    reviewed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+")
    review_note = models.TextField(blank=True)
    reviewed_at = models.DateTimeField(null=True, blank=True)

    objects = TraceQuerySet.as_manager()

    class Meta:
        ordering = ["run", "id"]
        constraints = [models.UniqueConstraint(fields=["run", "task_id", "sample"], name="one_trace_per_sample")]
        indexes = [models.Index(fields=["kept", "review"])]

    def __str__(self) -> str:
        return f"trace {self.pk} ({self.source} #{self.sample})"
