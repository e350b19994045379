"""The model worker's liveness, as seen by every other process.

The model lives in one long-lived Celery worker on the `gpu` queue (solo pool). That worker
blocks while it generates, so its heartbeat comes from its own thread rather than the worker's
event loop, and the state goes through the Django cache (Redis in server mode, process memory
in embedded mode, where web and workers share one process).
"""
from __future__ import annotations

import logging
import os
import threading
import time

from celery import bootsteps
from celery.signals import task_postrun, task_prerun
from django.conf import settings
from django.core.cache import cache

log = logging.getLogger(__name__)

GPU_QUEUE = "gpu"
STATE_KEY = "model-worker:state"
HEARTBEAT_INTERVAL_S = 5.0
STALE_AFTER_S = 20.0

_busy_with: dict[str, str] = {}  # task id -> task name, for tasks on the gpu queue


def describe_model() -> dict:
    """The configured model, resolved but not loaded."""
    from engine.lm.model_source import ModelNotFound, resolve_model_source

    try:
        source = resolve_model_source(settings.AUTODIDACT_MODEL)
    except ModelNotFound as exc:
        return {"model": settings.AUTODIDACT_MODEL or "default", "model_error": str(exc)}
    return {"model": source.display_name, "model_kind": source.kind}


def publish_state(hostname: str, state: str, **extra) -> None:
    payload = {"hostname": hostname, "pid": os.getpid(), "state": state, "ts": time.time(), **extra}
    cache.set(STATE_KEY, payload, timeout=int(STALE_AFTER_S * 6))


def read_state(now: float | None = None) -> dict:
    """Last published state plus `alive` (a heartbeat newer than STALE_AFTER_S)."""
    state = cache.get(STATE_KEY)
    if not state:
        return {"alive": False, "state": "absent", "detail": "no model worker has reported"}
    age = (now or time.time()) - state.get("ts", 0)
    alive = state.get("state") != "stopped" and age <= STALE_AFTER_S
    return {**state, "alive": alive, "age_s": round(age, 1)}


@task_prerun.connect
def _mark_busy(task_id=None, task=None, **_):
    if (task.request.delivery_info or {}).get("routing_key") == GPU_QUEUE:
        _busy_with[task_id] = task.name


@task_postrun.connect
def _mark_idle(task_id=None, **_):
    _busy_with.pop(task_id, None)


class ModelWorkerHeartbeat(bootsteps.StartStopStep):
    """Worker bootstep: publish the model worker's state every few seconds, when it serves `gpu`."""

    label = "model worker heartbeat"

    def __init__(self, worker, **kwargs):
        super().__init__(worker, **kwargs)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, worker):
        if GPU_QUEUE not in worker.app.amqp.queues.consume_from:
            return
        from engine.lm.transformers_imports import warm
        from webapp.serving.model_runtime import runtime

        warm()  # before the preload thread and the first task: the two must not race in transformers' lazy imports
        model = describe_model()
        if settings.AUTODIDACT_PRELOAD_MODEL and "model_error" not in model:
            runtime.preload_in_background()

        def beat():
            while not self._stop.is_set():
                busy = list(_busy_with.values())
                state = "busy" if busy else "idle"
                try:
                    publish_state(worker.hostname, state, task=busy[0] if busy else None, runtime=runtime.state,
                                  **model)
                except Exception:  # the cache being down must not kill the worker
                    log.warning("model worker heartbeat failed", exc_info=True)
                try:
                    runtime.swap_if_changed()  # a promotion or rollback: load the new model before it is asked for
                except Exception:
                    log.warning("could not check the active model version", exc_info=True)
                self._stop.wait(HEARTBEAT_INTERVAL_S)

        self._thread = threading.Thread(target=beat, name="model-heartbeat", daemon=True)
        self._thread.start()

    def stop(self, worker):
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout=2)
        self._thread = None
        from webapp.serving.model_runtime import runtime

        runtime.close()
        try:
            publish_state(worker.hostname, "stopped")
        except Exception:
            log.warning("could not publish the model worker's stop", exc_info=True)
