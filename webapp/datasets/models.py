"""The training-data ledger: every verified example that did not come from a puzzle pair, with its
provenance. Today that is a chat repair the sandbox verified, stored as exactly the messages the model
was given for it (`prompt`) and the reply it wrote (`completion`). A training round snapshots the
trainable rows; `manage.py export_ledger` and the admin list the same rows."""
from __future__ import annotations

from django.conf import settings
from django.db import models

from engine.datasets.mbpp import split_of

TEST_SOURCES = ("humaneval", "p3-test", "p3-validation", "mbpp-plus")  # task sources kept for evaluation, whatever their number


def trainable_source(source: str) -> bool:
    """May an example whose task came from `source` ("user", "mbpp:601", "p3-test:...") be trained on?
    Never an MBPP test or validation task (11-600), HumanEval, or a P3 test or validation puzzle."""
    source = source or ""
    if source.startswith("mbpp:"):
        try:
            return split_of(int(source.split(":", 1)[1])) not in ("test", "validation")
        except ValueError:
            return False
    return not source.startswith(TEST_SOURCES)


class TrainingExampleQuerySet(models.QuerySet):
    def trainable(self):
        """The rows a round trains on, oldest first."""
        ids = [pk for pk, source in self.values_list("pk", "task_source") if trainable_source(source)]
        return self.filter(pk__in=ids).order_by("id")


class TrainingExample(models.Model):
    class Provenance(models.TextChoices):
        HUMAN_FEEDBACK_REPAIR = "human-feedback repair"
        # the model's own chat-form answer to an MBPP train task, passing its asserts (engine.datasets.own_replies)
        OWN_REPLY = "own verified reply"

    provenance = models.CharField(max_length=40, choices=Provenance.choices)
    # Chat format: the messages the model was given, and the reply the sandbox verified.
    prompt = models.JSONField(default=list)
    completion = models.TextField()
    code = models.TextField()
    feedback = models.TextField(blank=True)
    model_name = models.CharField(max_length=200, blank=True)
    verdict = models.JSONField(default=dict)
    turn = models.PositiveIntegerField(default=0)
    # Where the task came from ("user", "puzzle", "mbpp:601", ...): test-split tasks are never trained on.
    task_source = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    # Where it came from; kept (SET_NULL) even if the conversation is deleted later.
    source_message = models.OneToOneField("chat.Message", null=True, blank=True, on_delete=models.SET_NULL,
                                          related_name="training_example")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = TrainingExampleQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.provenance} #{self.pk}"

    @property
    def messages(self) -> list[dict]:
        """The example as a chat: what the model was given, then what it answered."""
        return [*self.prompt, {"role": "assistant", "content": self.completion}]

    @property
    def trainable(self) -> bool:
        return trainable_source(self.task_source)
