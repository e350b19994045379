"""Training rounds and the model versions they produce.

One round at a time is enforced by the database: an unfinished round holds `lock_slot = True`,
a unique column (NULLs do not collide), so a second insert fails in every process at once.
"""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class ModelVersion(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active"  # the model the workers serve
        CANDIDATE = "candidate"  # trained and evaluated, waiting (or being evaluated)
        REJECTED = "rejected"  # worse than the active model by more than the margin
        RETIRED = "retired"  # was active before

    name = models.CharField(max_length=120)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children")
    # A local checkpoint folder; "" for the base model configured by AUTODIDACT_MODEL.
    checkpoint = models.CharField(max_length=500, blank=True)
    created_by_run = models.OneToOneField("TrainingRun", null=True, blank=True, on_delete=models.SET_NULL,
                                          related_name="produced_version")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.CANDIDATE)
    is_active = models.BooleanField(default=False)
    # {"p3": P3EvalResult dict (per-puzzle rows dropped), "humaneval": {...}}, by evaluation key
    metrics = models.JSONField(default=dict, blank=True)
    reason = models.TextField(blank=True)  # why promoted, rejected or rolled back
    created_at = models.DateTimeField(auto_now_add=True)
    promoted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["is_active"], condition=Q(is_active=True),
                                               name="one_active_model_version")]

    def __str__(self):
        return self.name

    @property
    def spec(self) -> str:
        """What the model loaders are given for this version."""
        return self.checkpoint or settings.AUTODIDACT_MODEL


class TrainingRun(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        EVALUATING = "evaluating"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    class Trigger(models.TextChoices):
        FORM = "form"
        ADMIN = "admin"
        COMMAND = "command"
        SCHEDULE = "schedule"
        SELFPLAY = "selfplay"

    ACTIVE = (Status.QUEUED, Status.RUNNING, Status.EVALUATING)

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    lock_slot = models.BooleanField(null=True, unique=True, default=True, editable=False)
    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.FORM)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    config = models.JSONField(default=dict)  # webapp.training.rounds.RoundConfig
    base_version = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")
    # The exact data: ids per source, how many examples, and a content hash of their texts.
    dataset = models.JSONField(default=dict, blank=True)
    dataset_hash = models.CharField(max_length=64, blank=True)
    examples = models.PositiveIntegerField(default=0)
    stage = models.CharField(max_length=24, blank=True)  # data, eval-before, train, eval-after, decide
    progress = models.JSONField(default=dict, blank=True)  # step, max_steps, epoch, loss, tokens_per_s, eta_s
    loss_curve = models.JSONField(default=list, blank=True)  # [[step, loss], ...]
    eval_before = models.JSONField(default=dict, blank=True)
    eval_after = models.JSONField(default=dict, blank=True)
    training = models.JSONField(default=dict, blank=True)  # engine.training.sft.SFTResult
    decision = models.TextField(blank=True)
    log = models.TextField(blank=True)
    error = models.TextField(blank=True)
    cancel_requested = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"Training round {self.pk}"

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE

    @property
    def fraction(self) -> float:
        """0..1 for the progress bar: evaluation before, training, evaluation after."""
        weights = {"data": 0.0, "eval-before": 0.0, "train": 0.2, "eval-after": 0.8, "decide": 1.0}
        if self.status == self.Status.SUCCEEDED:
            return 1.0
        start = weights.get(self.stage, 0.0)
        if self.stage == "train":
            steps, total = self.progress.get("step", 0), self.progress.get("max_steps") or 0
            return start + 0.6 * (steps / total if total else 0.0)
        if self.stage in ("eval-before", "eval-after"):
            done, total = self.progress.get("done", 0), self.progress.get("total") or 0
            return start + 0.2 * (done / total if total else 0.0)
        return start
