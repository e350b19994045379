"""Dialog studies (the MBPP paper's human-feedback study): a replay on the queues, where simulated
people give each kind of feedback to the tasks a model fails at first, and live dialogs, where
reviewers give their own feedback in the chat. Every task's transcript is stored."""
from __future__ import annotations

from django.conf import settings
from django.db import models

from webapp.core.runs import BackgroundRun


class Study(BackgroundRun):
    NOUN = "study"

    title = models.CharField(max_length=200, blank=True)
    # The model under study, in the chat's vocabulary (webapp/serving/chat_models.py): "" = the
    # served model, "packaged:NAME" or "version:ID". Live dialogs talk to the same one.
    chat_model = models.CharField(max_length=40, blank=True)
    model_info = models.JSONField(default=dict, blank=True)  # name, backend, quantization, spec
    feedback_info = models.JSONField(default=dict, blank=True)  # the model that wrote the hints
    show_reference = models.BooleanField(default=False)  # may live participants see the reference?
    tasks_total = models.PositiveIntegerField(default=0)
    summary = models.JSONField(default=dict, blank=True)  # the replay's result without its transcripts

    class Meta(BackgroundRun.Meta):
        verbose_name_plural = "studies"

    @property
    def fraction(self) -> float:
        """Turns done of turn 0 plus the feedback turns (the stage says which one is running)."""
        if self.status == self.Status.SUCCEEDED:
            return 1.0
        stage = self.stage.split()
        done = int(stage[1]) if len(stage) == 2 and stage[0] == "turn" and stage[1].isdigit() else 0
        return done / (self.turns + 1)

    @property
    def turns(self) -> int:
        return int((self.config or {}).get("turns", 4))

    @property
    def failed_ids(self) -> list[int]:
        return list((self.summary or {}).get("failed") or [])

    def __str__(self) -> str:
        return self.title or f"Study {self.pk}"


class StudyTask(models.Model):
    """One task of a replay: the first attempt, and each feedback kind's repair turns (if it failed)."""

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="task_rows")
    task_id = models.PositiveIntegerField()
    position = models.PositiveIntegerField(default=0)
    text = models.TextField()
    tests = models.JSONField(default=list)
    setup = models.TextField(blank=True)  # MBPP's test_setup_code, for live dialogs' checks
    reference = models.TextField(blank=True)  # the task's reference solution (shown only where allowed)
    turn0 = models.JSONField(default=dict)  # reply, code, tokens, status, verdict
    arms = models.JSONField(default=dict)  # {kind: [turn records]}: empty when turn 0 passed

    class Meta:
        ordering = ["study", "position"]
        constraints = [models.UniqueConstraint(fields=["study", "task_id"], name="one_row_per_study_task")]

    @property
    def solved_first(self) -> bool:
        return self.turn0.get("status") == "passed"

    def as_row(self) -> dict:
        return {"task_id": self.task_id, "text": self.text, "tests": self.tests, "turn0": self.turn0,
                "arms": self.arms}


class LiveDialog(models.Model):
    """A person's feedback on one failed task, held in a chat conversation that starts from the
    replay's first attempt; the conversation's own measures (turns, first success) are the result."""

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="live_dialogs")
    task = models.ForeignKey(StudyTask, on_delete=models.CASCADE, related_name="live_dialogs")
    participant = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    conversation = models.OneToOneField("chat.Conversation", on_delete=models.CASCADE, related_name="study_dialog")
    finished = models.BooleanField(default=False)  # the person moved on (solved, out of turns, or gave up)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["study", "created_at", "id"]
        constraints = [models.UniqueConstraint(fields=["task", "participant"], name="one_dialog_per_person_and_task")]
