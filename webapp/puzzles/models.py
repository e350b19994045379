"""Puzzles, the attempts to solve them, people's reviews, and the self-play runs that make them.

A reviewer's edit never rewrites a puzzle: it adds a new version (`previous` points back, only
the newest `is_current`) that is verified again. Rejected or flagged puzzles, test-split puzzles
and old versions never reach training data (`Attempt.objects.training_pairs()`).
"""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from webapp.core.runs import BackgroundRun, timing_row


class GenerationRun(BackgroundRun):
    """One self-play run: settings, counts per stage, status and timing."""

    NOUN = "run"
    STALLED_AFTER_S = 60.0  # no heartbeat (one a second while a step runs) for this long
    STALLS_WHEN = (BackgroundRun.Status.QUEUED, BackgroundRun.Status.RUNNING)  # every step is queued anew

    model_name = models.CharField(max_length=200, blank=True)
    counts = models.JSONField(default=dict)  # engine.selfplay.pipeline.COUNTS
    timings = models.JSONField(default=dict)  # stage -> {seconds, tokens, items}
    batches_done = models.PositiveIntegerField(default=0)

    class Meta(BackgroundRun.Meta):
        pass

    def __str__(self):
        return f"Generation run {self.pk}"

    @property
    def batches(self) -> int:
        return int(self.config.get("batches", 0))

    @property
    def fraction(self) -> float:
        """0..1, counting each stage of the batch in progress as a quarter batch."""
        from engine.selfplay.pipeline import STAGES

        if not self.batches:
            return 0.0
        partial = STAGES.index(self.stage) / len(STAGES) if self.stage in STAGES else 0.0
        return min(1.0, (self.batches_done + partial) / self.batches)

    def stage_timings(self) -> list[dict]:
        from engine.selfplay.pipeline import STAGES

        return [timing_row(stage, stage, (self.timings or {}).get(stage)) for stage in STAGES]


class GenerationBatch(models.Model):
    """What a run's batch has produced so far: each stage's output, saved before the next starts."""

    run = models.ForeignKey(GenerationRun, on_delete=models.CASCADE, related_name="batch_rows")
    index = models.PositiveIntegerField()
    stage = models.CharField(max_length=16)  # the next stage to run; "done" when finished
    data = models.JSONField(default=dict)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "index"], name="puzzles_one_row_per_batch")]


class Puzzle(models.Model):
    class Source(models.TextChoices):
        P3_TRAIN = "p3-train", "P3 train"
        P3_TEST = "p3-test", "P3 test"
        P3_VALIDATION = "p3-validation", "P3 validation"
        P3_OTHER = "p3-other", "P3 (no split)"
        P3_VARIANT = "p3-variant", "P3 variant"  # a train puzzle with new parameter values
        SEED = "seed", "Seed"
        GENERATED = "generated", "Generated"
        USER = "user", "User"

    class Split(models.TextChoices):
        TRAIN = "train"
        VALIDATION = "validation"  # P3 train problems held out for the round gate (engine/selfplay/p3.py)
        TEST = "test"
        OTHER = "other"

    HELD_OUT = (Split.TEST, Split.VALIDATION)  # never trained on, never discussed with the model

    class Status(models.TextChoices):
        UNVERIFIED = "unverified"
        SOLVED = "solved"
        UNSOLVED = "unsolved"
        REJECTED = "rejected"

    class ReviewState(models.TextChoices):
        NONE = "", "not reviewed"
        APPROVE = "approve", "approved"
        REJECT = "reject", "rejected"
        FLAG = "flag", "flagged"

    name = models.CharField(max_length=200, blank=True)
    description = models.TextField(blank=True)
    sat = models.TextField()
    answer_type = models.CharField(max_length=100, blank=True)
    fingerprint = models.CharField(max_length=32, db_index=True)  # normalised AST hash
    source = models.CharField(max_length=16, choices=Source.choices)
    split = models.CharField(max_length=12, choices=Split.choices, default=Split.TRAIN)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.UNVERIFIED)
    # The model's solve rate so far (passed / attempts by models); None until it has attempts.
    difficulty = models.FloatField(null=True, blank=True)
    model_attempts = models.PositiveIntegerField(default=0)
    model_passed = models.PositiveIntegerField(default=0)
    review_state = models.CharField(max_length=8, choices=ReviewState.choices, default="", blank=True)
    review_count = models.PositiveIntegerField(default=0)
    version = models.PositiveIntegerField(default=1)
    previous = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    is_current = models.BooleanField(default=True)
    generation_run = models.ForeignKey(GenerationRun, null=True, blank=True, on_delete=models.SET_NULL,
                                       related_name="puzzles")
    model_name = models.CharField(max_length=200, blank=True)  # the model that wrote it
    # The version of this project's model that wrote it (none: a teacher, a person, a dataset).
    model_version = models.ForeignKey("serving.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL,
                                      related_name="written_puzzles")
    iteration = models.PositiveIntegerField(null=True, blank=True)  # that version's self-play iteration (base: 0)
    sampling = models.JSONField(default=dict, blank=True)  # and how
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # The list's filters and sorts, each led by is_current (the list shows current versions).
            models.Index(fields=["is_current", "-created_at", "-id"], name="puzzle_current_created"),
            models.Index(fields=["is_current", "status", "-created_at"], name="puzzle_current_status"),
            models.Index(fields=["is_current", "source", "-created_at"], name="puzzle_current_source"),
            models.Index(fields=["is_current", "split", "-created_at"], name="puzzle_current_split"),
            models.Index(fields=["is_current", "difficulty"], name="puzzle_current_difficulty"),
            models.Index(fields=["is_current", "review_state", "-created_at"], name="puzzle_current_review"),
        ]

    def __str__(self):
        return self.name or f"Puzzle {self.pk}"

    @property
    def usable_for_training(self) -> bool:
        return (self.is_current and self.split not in self.HELD_OUT and self.status == self.Status.SOLVED
                and self.review_state not in (self.ReviewState.REJECT, self.ReviewState.FLAG))


# Puzzles that may be trained on whatever their outcome (current, not held out, not rejected or
# flagged by a reviewer); a training pair also needs the puzzle solved.
TRAINABLE_PUZZLES = (Q(puzzle__is_current=True) & ~Q(puzzle__split__in=Puzzle.HELD_OUT)
                     & ~Q(puzzle__review_state__in=[Puzzle.ReviewState.REJECT, Puzzle.ReviewState.FLAG]))
TRAINING_PUZZLES = TRAINABLE_PUZZLES & Q(puzzle__status=Puzzle.Status.SOLVED)


class AttemptQuerySet(models.QuerySet):
    def training_pairs(self):
        """Verified solutions kept for training, of puzzles that may be trained on."""
        return self.filter(TRAINING_PUZZLES, kept=True, status="passed")


class Attempt(models.Model):
    class Origin(models.TextChoices):
        MODEL = "model"
        USER = "user"  # "solve it yourself"
        REFERENCE = "reference"  # shipped with the puzzle (P3, seeds)
        SEARCH = "search"  # written by engine/selfplay/search_solutions.py: a copy of sat and a search

    puzzle = models.ForeignKey(Puzzle, on_delete=models.CASCADE, related_name="attempts")
    origin = models.CharField(max_length=16, choices=Origin.choices, default=Origin.MODEL)
    code = models.TextField()  # a `def sol(...)`
    status = models.CharField(max_length=24)  # the sandbox's verdict status
    verdict = models.JSONField(default=dict)
    kept = models.BooleanField(default=False)  # among the puzzle's shortest distinct verified solutions
    model_name = models.CharField(max_length=200, blank=True)
    model_version = models.ForeignKey("serving.ModelVersion", null=True, blank=True, on_delete=models.SET_NULL,
                                      related_name="+")  # the version that wrote it (model attempts)
    style = models.CharField(max_length=20, blank=True)  # the prompt style that produced it
    sampling = models.JSONField(default=dict, blank=True)
    duration_ms = models.FloatField(default=0.0)
    generation_run = models.ForeignKey(GenerationRun, null=True, blank=True, on_delete=models.SET_NULL,
                                       related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    objects = AttemptQuerySet.as_manager()

    class Meta:
        ordering = ["-kept", "status", "created_at", "id"]
        indexes = [models.Index(fields=["puzzle", "status"], name="attempt_puzzle_status")]

    @property
    def passed(self) -> bool:
        return self.status == "passed"


class Review(models.Model):
    class Verdict(models.TextChoices):
        APPROVE = "approve"
        REJECT = "reject"
        FLAG = "flag"

    puzzle = models.ForeignKey(Puzzle, on_delete=models.CASCADE, related_name="reviews")
    attempt = models.ForeignKey(Attempt, null=True, blank=True, on_delete=models.CASCADE, related_name="reviews")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    verdict = models.CharField(max_length=8, choices=Verdict.choices)
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]


class ReviewGuidelines(models.Model):
    """What reviewers should approve, reject or flag: one text an admin edits, shown beside the queue."""

    text = models.TextField(blank=True)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    updated_at = models.DateTimeField(auto_now=True)

    DEFAULT = (
        "**Approve** a puzzle that is well-formed, has a clear goal and at least one answer exists.\n\n"
        "**Reject** one that is trivial (any value passes), impossible, or only tests Python trivia.\n\n"
        "**Flag** one you are unsure about, for a second reviewer.\n\n"
        "For an attempt: approve a solution that solves the puzzle honestly; reject one that games the "
        "check (e.g. reads the puzzle's own source).")

    @classmethod
    def current(cls) -> ReviewGuidelines:
        return cls.objects.order_by("-pk").first() or cls(text=cls.DEFAULT)
