"""Training rounds, each pointing at the model version it started from and the one it produced.

One round at a time is enforced by the database: an unfinished round holds `lock_slot = True`,
a unique column (NULLs do not collide), so a second insert fails in every process at once.
"""
from __future__ import annotations

from django.db import models

from webapp.core.runs import BackgroundRun, timing_row
from webapp.serving.models import ModelVersion


class TrainingRun(BackgroundRun):
    class Trigger(models.TextChoices):
        FORM = "form"
        ADMIN = "admin"
        COMMAND = "command"
        SCHEDULE = "schedule"
        SELFPLAY = "selfplay"

    NOUN = "round"
    STAGES = (("data", "Snapshot the data"), ("eval-before", "Evaluate the active model"), ("train", "Fine-tune"),
              ("eval-after", "Evaluate the new model"), ("decide", "Decide"))

    lock_slot = models.BooleanField(null=True, unique=True, default=True, editable=False)
    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.FORM)
    base_version = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.SET_NULL,
                                     related_name="+")
    produced_version = models.OneToOneField(ModelVersion, null=True, blank=True, on_delete=models.SET_NULL,
                                            related_name="training_run")
    # The exact data: ids per source, how many examples, and a content hash of their texts.
    dataset = models.JSONField(default=dict, blank=True)
    dataset_hash = models.CharField(max_length=64, blank=True)
    examples = models.PositiveIntegerField(default=0)
    progress = models.JSONField(default=dict, blank=True)  # step, max_steps, epoch, loss, tokens_per_s, eta_s
    loss_curve = models.JSONField(default=list, blank=True)  # [[step, loss], ...]
    rl_curve = models.JSONField(default=list, blank=True)  # RL rounds: per step reward, its parts, KL
    eval_before = models.JSONField(default=dict, blank=True)
    eval_after = models.JSONField(default=dict, blank=True)
    training = models.JSONField(default=dict, blank=True)  # engine.training.sft.SFTResult
    # Candidates the gate rejected before the round's last one, with interpolation fallbacks:
    # [{alpha, version, name, eval_after (brief), decision}, ...]
    candidates = models.JSONField(default=list, blank=True)
    decision = models.TextField(blank=True)
    log = models.TextField(blank=True)

    class Meta(BackgroundRun.Meta):
        pass

    def __str__(self):
        return f"Training round {self.pk}"

    @property
    def resumable(self) -> bool:
        """Failed or cancelled (a stalled round is marked failed by the reaper first)."""
        return self.status in (self.Status.FAILED, self.Status.CANCELLED)

    def stage_timings(self) -> list[dict]:
        before, after, training = self.eval_before or {}, self.eval_after or {}, self.training or {}

        def evaluation(result: dict) -> dict | None:
            if not result or result.get("reused") or result.get("seconds") is None:
                return None  # a reused evaluation spent its time in an earlier round
            p3 = result.get("p3") or {}
            checks = [result.get(key) or {} for key in ("code", "code_chat", "humaneval")]
            items = (p3.get("puzzles") or 0) + sum(check.get("problems") or 0 for check in checks)
            tokens = (p3.get("tokens") or 0) + sum(check.get("tokens") or 0 for check in checks)
            return {"seconds": result["seconds"], "items": items, "tokens": tokens}

        fine_tune = ({"seconds": training["seconds"], "items": training.get("steps", 0),
                      "tokens": round((training.get("tokens_per_s") or 0) * training["seconds"])}
                     if training.get("seconds") is not None else None)
        return [timing_row("eval-before", "Evaluate the active model", evaluation(before)),
                timing_row("train", "Fine-tune", fine_tune),
                timing_row("eval-after", "Evaluate the new model", evaluation(after))]

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


def code_result(evaluation: dict | None) -> dict:
    """An evaluation's forgetting check: the code validation benchmark ("code"), or HumanEval in
    rounds from before validation sets ("humaneval")."""
    evaluation = evaluation or {}
    return evaluation.get("code") or evaluation.get("humaneval") or {}


def code_results(evaluation: dict | None) -> list[dict]:
    """Every code check of an evaluation, in the gate's order: the completion-form check ("code"),
    then the chat-form one ("code_chat") where the round measured it; HumanEval in older rounds."""
    evaluation = evaluation or {}
    found = [evaluation[key] for key in ("code", "code_chat") if evaluation.get(key)]
    return found or ([evaluation["humaneval"]] if evaluation.get("humaneval") else [])


def code_title(evaluation: dict | None) -> str:
    found = code_result(evaluation)
    return found.get("title") or ("HumanEval" if found else "code benchmark")
