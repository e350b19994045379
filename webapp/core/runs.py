"""The shape every background run shares (generation runs, training rounds, and the kinds to come):
status, who started it and with what settings, the stage it is at, a heartbeat, a cancel request,
timings, and the failure reason. Pages for a run come from `run_views.RunPages`."""
from __future__ import annotations

import time
from datetime import timedelta

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, models
from django.utils import timezone

from engine.lm.throughput import tokens_per_s

RECONNECT_WAITS_S = (1.0, 2.0, 4.0, 8.0)


def with_reconnect(write):
    """`write()`, again on a fresh connection when the database dropped this one (a PostgreSQL
    restart ends every connection): how a run records its end, so a restart mid-run leaves the
    reason on the run instead of a run that seems to run on. Not inside a transaction, where a
    new connection would lose what the transaction did."""
    for wait in (*RECONNECT_WAITS_S, None):
        try:
            return write()
        except (OperationalError, InterfaceError):
            if wait is None or connection.in_atomic_block:
                raise
            connection.close()
            time.sleep(wait)


class BackgroundRun(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        EVALUATING = "evaluating"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    ACTIVE = (Status.QUEUED, Status.RUNNING, Status.EVALUATING)
    NOUN = "run"  # what its page calls it ("The run failed"; "round" for training)
    STALLED_AFTER_S = 90.0  # no heartbeat for this long while STALLS_WHEN: its worker is gone
    STALLS_WHEN = (Status.RUNNING, Status.EVALUATING)

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    config = models.JSONField(default=dict)  # the kind's frozen config dataclass, as a dict
    stage = models.CharField(max_length=24, blank=True)
    error = models.TextField(blank=True)
    cancel_requested = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True
        ordering = ["-created_at", "-id"]

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE

    @property
    def fraction(self) -> float:
        """0..1 for the progress bar."""
        return 1.0 if self.status == self.Status.SUCCEEDED else 0.0

    @property
    def percent(self) -> int:
        return round(self.fraction * 100)

    def is_stalled(self, now=None) -> bool:
        """Working (by its status), but its worker has not been heard from for a while."""
        if self.status not in self.STALLS_WHEN:
            return False
        quiet = (now or timezone.now()) - (self.heartbeat_at or self.created_at)
        return quiet.total_seconds() > self.STALLED_AFTER_S

    @property
    def resumable(self) -> bool:
        return self.status in (self.Status.FAILED, self.Status.CANCELLED) or self.is_stalled()

    def stage_timings(self) -> list[dict]:
        """[{stage, label, seconds, items, tokens, tokens_per_s, ran}] for the page's table."""
        return []

    @classmethod
    def stalled(cls):
        """The runs whose worker went silent (for a reaper)."""
        quiet_since = timezone.now() - timedelta(seconds=cls.STALLED_AFTER_S)
        return cls.objects.filter(status__in=cls.STALLS_WHEN, heartbeat_at__lt=quiet_since)

    # Every status change is one conditional UPDATE from the states the run may leave, and its
    # caller looks at the row count: a cancel (or a reaper) that lands between a worker's read and
    # its write is never overwritten.
    @classmethod
    def finish(cls, queryset, status: str, **fields) -> int:
        """End the runs in `queryset` that are still active (a kind may add fields, e.g. its lock);
        a final status is final."""
        return with_reconnect(lambda: queryset.filter(status__in=cls.ACTIVE).update(
            status=status, finished_at=timezone.now(), **fields))

    @classmethod
    def reopen(cls, pk: int) -> bool:
        """A failed, cancelled or stalled run back to QUEUED; False when it changed meanwhile."""
        ended = cls.objects.filter(pk=pk, status__in=(cls.Status.FAILED, cls.Status.CANCELLED))
        return bool((ended | cls.stalled().filter(pk=pk)).update(
            status=cls.Status.QUEUED, error="", finished_at=None, cancel_requested=False))

    @classmethod
    def claim(cls, pk: int) -> bool:
        """QUEUED -> RUNNING for exactly one worker (a redelivered task finds it taken)."""
        now = timezone.now()
        return bool(cls.objects.filter(pk=pk, status=cls.Status.QUEUED, cancel_requested=False)
                    .update(status=cls.Status.RUNNING, started_at=now, heartbeat_at=now))

    @classmethod
    def request_cancel(cls, pk: int) -> bool:
        """Ask an active run to stop (its worker sees it between steps); one not yet started stops
        at once. False when it had already ended."""
        if not cls.objects.filter(pk=pk, status__in=cls.ACTIVE).update(cancel_requested=True):
            return False
        cls.finish(cls.objects.filter(pk=pk, status=cls.Status.QUEUED), cls.Status.CANCELLED,
                   error="cancelled before it started")
        return True

    @classmethod
    def move(cls, pk: int, status: str, **fields) -> bool:
        """An active run, with no cancel asked for, to another active `status`; False otherwise."""
        return bool(cls.objects.filter(pk=pk, status__in=cls.ACTIVE, cancel_requested=False)
                    .update(status=status, **fields))


def timing_row(stage: str, label: str, timing: dict | None) -> dict:
    """One row of a run's time-per-stage table from {seconds, items, tokens}."""
    timing = timing or {}
    seconds, tokens = float(timing.get("seconds") or 0.0), int(timing.get("tokens") or 0)
    return {"stage": stage, "label": label, "seconds": seconds, "items": int(timing.get("items") or 0),
            "tokens": tokens, "tokens_per_s": tokens_per_s(tokens, seconds) or None, "ran": bool(timing)}
