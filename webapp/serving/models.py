"""Model versions: the base model (v0) and every model a training round produced.

The table keeps its first name (`training_modelversion`): the model moved here from the training
app, which now points at the version a round produced (`TrainingRun.produced_version`).
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
    # "store:round-N/model": the version in the model store (webapp/serving/model_store.py), which any
    # host fetches; a local checkpoint folder for versions from before the store; "" for the base model
    # configured by AUTODIDACT_MODEL.
    checkpoint = models.CharField(max_length=500, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.CANDIDATE)
    is_active = models.BooleanField(default=False)
    # {"p3": P3EvalResult dict (per-puzzle rows dropped), "humaneval": {...}}, by evaluation key
    metrics = models.JSONField(default=dict, blank=True)
    reason = models.TextField(blank=True)  # why promoted, rejected or rolled back
    created_at = models.DateTimeField(auto_now_add=True)
    promoted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "training_modelversion"
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["is_active"], condition=Q(is_active=True),
                                               name="one_active_model_version")]

    def __str__(self):
        return self.name

    @property
    def spec(self) -> str:
        """What names this version to the model loaders (a `store:` spec goes through model_store.local_spec)."""
        return self.checkpoint or settings.AUTODIDACT_MODEL
