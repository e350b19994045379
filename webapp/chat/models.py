"""Conversations and messages; an assistant message is written as it streams."""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class Conversation(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations")
    title = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]

    def __str__(self):
        return self.title or f"Conversation {self.pk}"


class Message(models.Model):
    class Role(models.TextChoices):
        USER = "user"
        ASSISTANT = "assistant"

    class Status(models.TextChoices):
        COMPLETE = "complete"
        STREAMING = "streaming"
        CANCELLED = "cancelled"  # stopped by the user; what was generated is kept
        INTERRUPTED = "interrupted"  # the model worker stopped answering
        FAILED = "failed"

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    # Denormalised so the database itself allows one streaming message per user.
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    role = models.CharField(max_length=16, choices=Role.choices)
    content = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.COMPLETE)
    chunks = models.PositiveIntegerField(default=0)  # chunks persisted so far (the next seq)
    finish_reason = models.CharField(max_length=16, blank=True)
    model_name = models.CharField(max_length=200, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["owner"], condition=Q(status="streaming"),
                                    name="chat_one_stream_per_user"),
        ]

    def as_event(self) -> dict:
        return {"id": self.pk, "role": self.role, "content": self.content, "status": self.status,
                "chunks": self.chunks, "finish_reason": self.finish_reason, "model": self.model_name}
