"""Verified training examples, whatever produced them, each with its provenance."""
from __future__ import annotations

from django.conf import settings
from django.db import models


class TrainingExample(models.Model):
    class Provenance(models.TextChoices):
        HUMAN_FEEDBACK_REPAIR = "human-feedback repair"

    provenance = models.CharField(max_length=40, choices=Provenance.choices)
    # Chat format: the messages the model was given, and the reply the sandbox verified.
    prompt = models.JSONField(default=list)
    completion = models.TextField()
    code = models.TextField()
    feedback = models.TextField(blank=True)
    model_name = models.CharField(max_length=200, blank=True)
    verdict = models.JSONField(default=dict)
    turn = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    # Where it came from; kept (SET_NULL) even if the conversation is deleted later.
    source_message = models.OneToOneField("chat.Message", null=True, blank=True, on_delete=models.SET_NULL,
                                          related_name="training_example")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.provenance} #{self.pk}"
