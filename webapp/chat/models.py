"""Conversations and messages; an assistant message is written as it streams.

Messages form a tree (`parent`): editing a user message or regenerating a reply adds a sibling,
so earlier branches are kept; `Conversation.leaf` is the end of the branch on screen.
A conversation may carry a task (a problem with asserts, or a P3 puzzle): every reply's code is
then run against it in the sandbox, and the dialog study's measures are kept on the conversation.
"""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class Conversation(models.Model):
    class Kind(models.TextChoices):
        FREE = "free", "Free chat"
        TASK = "task", "Task with tests"
        PUZZLE = "puzzle", "P3 puzzle"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations")
    title = models.CharField(max_length=200, blank=True)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.FREE)
    problem = models.TextField(blank=True)  # task: the problem statement in words
    tests = models.JSONField(default=list, blank=True)  # task: assert statements
    entry_point = models.CharField(max_length=100, blank=True)  # task: the function the tests call
    setup = models.TextField(blank=True)  # task: code the tests need first (MBPP's test_setup_code)
    sat = models.TextField(blank=True)  # puzzle: `def sat(x: T, ...)`
    source = models.CharField(max_length=200, blank=True)  # where the task came from ("user", "mbpp:11", ...)
    # The model this conversation talks to (webapp/serving/chat_models.py): "" = the served model.
    chat_model = models.CharField(max_length=40, blank=True)
    leaf = models.ForeignKey("Message", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # The dialog study's measures: model turns tested, solved, and the turn of first success.
    turns = models.PositiveIntegerField(default=0)
    solved = models.BooleanField(default=False)
    first_success_turn = models.PositiveIntegerField(null=True, blank=True)
    max_feedback_turns = models.PositiveSmallIntegerField(default=0)  # 0: no limit (a study sets its own)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at", "-id"]

    def __str__(self):
        return self.title or f"Conversation {self.pk}"

    @property
    def has_tests(self) -> bool:
        return (self.kind == self.Kind.TASK and bool(self.tests)) or (self.kind == self.Kind.PUZZLE and bool(self.sat))


class Message(models.Model):
    class Role(models.TextChoices):
        USER = "user"
        ASSISTANT = "assistant"

    class Kind(models.TextChoices):
        CHAT = "chat"
        TASK = "task"  # the user's opening message that states a task or puzzle
        FEEDBACK = "feedback"  # natural-language feedback that asks for a repair
        REPAIR = "repair"  # the model's answer to feedback

    class Status(models.TextChoices):
        COMPLETE = "complete"
        STREAMING = "streaming"
        CANCELLED = "cancelled"  # stopped by the user; what was generated is kept
        INTERRUPTED = "interrupted"  # the model worker stopped answering
        FAILED = "failed"

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="children")
    # Denormalised so the database itself allows one streaming message per user.
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    role = models.CharField(max_length=16, choices=Role.choices)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.CHAT)
    content = models.TextField(blank=True)  # what the page shows
    prompt = models.TextField(blank=True)  # what the model was given instead, when different
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.COMPLETE)
    chunks = models.PositiveIntegerField(default=0)  # chunks persisted so far (the next seq)
    finish_reason = models.CharField(max_length=16, blank=True)
    model_name = models.CharField(max_length=200, blank=True)
    model_version = models.ForeignKey("serving.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL,
                                      related_name="+")  # assistant: the version that wrote it
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    turn = models.PositiveIntegerField(default=0)  # assistant: 1 for the first answer, +1 per repair
    code = models.TextField(blank=True)  # assistant: the code extracted from the reply
    verdict = models.JSONField(null=True, blank=True)  # assistant: the latest sandbox verdict of `code`
    tested_at = models.DateTimeField(null=True, blank=True)
    rating = models.SmallIntegerField(null=True, blank=True, choices=[(1, "up"), (-1, "down")])
    rating_reason = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["owner"], condition=Q(status="streaming"),
                                    name="chat_one_stream_per_user"),
        ]

    def as_event(self) -> dict:
        return {"id": self.pk, "role": self.role, "kind": self.kind, "content": self.content,
                "status": self.status, "chunks": self.chunks, "finish_reason": self.finish_reason,
                "model": self.model_name, "parent": self.parent_id, "turn": self.turn}

    @property
    def passed(self) -> bool:
        return bool(self.verdict) and self.verdict.get("status") == "passed"
