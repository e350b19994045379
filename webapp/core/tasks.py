"""Probe tasks: prove broker, routing, workers and result backend work end to end.

`/healthz` only asks workers to answer; these make one actually run a JSON task on each queue
(used by the tests and handy from a shell: `core.echo.delay({...}).get()`).
"""
from __future__ import annotations

import os
import threading
import time

from celery import shared_task

MAX_HOLD_S = 30.0


def _echo(task, payload: dict, hold_s: float) -> dict:
    # Holding the task open lets an operator (or a test) watch a killed worker's task come back.
    time.sleep(max(0.0, min(float(hold_s), MAX_HOLD_S)))
    delivery = task.request.delivery_info or {}
    return {"payload": payload, "queue": delivery.get("routing_key"), "worker": task.request.hostname,
            "pid": os.getpid(), "thread": threading.current_thread().name,
            "redelivered": bool(delivery.get("redelivered"))}


@shared_task(bind=True, name="core.echo")
def echo(self, payload: dict, hold_s: float = 0.0) -> dict:
    return _echo(self, payload, hold_s)


@shared_task(bind=True, name="verify.echo")
def verify_echo(self, payload: dict, hold_s: float = 0.0) -> dict:
    return _echo(self, payload, hold_s)


@shared_task(bind=True, name="gpu.echo")
def gpu_echo(self, payload: dict, hold_s: float = 0.0) -> dict:
    return _echo(self, payload, hold_s)


@shared_task(name="verify.batch")
def verify_batch(jobs: list[dict]) -> list[dict]:
    """Verify a batch of sandbox jobs (many per task, never one task per job)."""
    from webapp.core.verification import sandbox

    return [verdict.as_dict() for verdict in sandbox().verify_many(jobs)]


@shared_task(name="gpu.sample")
def gpu_sample(prompts: list, n: int = 1, params: dict | None = None) -> list[list[dict]]:
    """n completions for each prompt (text, or chat messages), batched on the model worker."""
    from dataclasses import asdict

    from engine.lm.generation import SamplingParams
    from webapp.serving.model_runtime import runtime

    rows = runtime.get().model.sample_many(prompts, n, SamplingParams(**(params or {})))
    return [[asdict(completion) for completion in row] for row in rows]
