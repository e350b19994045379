"""The model workers' liveness, as seen by every other process.

Models live in long-lived Celery workers (solo pool): the `gpu` worker for long jobs (generation
runs, rounds, evaluation) and the `chat` worker for the replies a person waits on. A worker blocks
while it generates, so its heartbeat comes from its own thread rather than the worker's event
loop, and each queue's state goes through the Django cache under a key of its own (Redis in server
mode, process memory in embedded mode, where web and workers share one process).
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
CHAT_QUEUE = "chat"
MODEL_QUEUES = (GPU_QUEUE, CHAT_QUEUE)
STATE_KEY = "model-worker:state"  # the gpu worker's (the name it had before the chat worker)
STATE_KEYS = {GPU_QUEUE: STATE_KEY, CHAT_QUEUE: "model-worker:chat:state"}
HEARTBEAT_INTERVAL_S = 5.0
STALE_AFTER_S = 20.0

_busy_with: dict[str, tuple[str, str]] = {}  # task id -> (queue, task name), for tasks on a model queue


def describe_model() -> dict:
    """The configured model, resolved but not loaded."""
    from engine.lm.model_source import ModelNotFound, resolve_model_source

    try:
        source = resolve_model_source(settings.AUTODIDACT_MODEL)
    except ModelNotFound as exc:
        return {"model": settings.AUTODIDACT_MODEL or "default", "model_error": str(exc)}
    return {"model": source.display_name, "model_kind": source.kind}


def publish_state(hostname: str, state: str, queue: str = GPU_QUEUE, **extra) -> None:
    payload = {"hostname": hostname, "pid": os.getpid(), "state": state, "queue": queue, "ts": time.time(), **extra}
    cache.set(STATE_KEYS[queue], payload, timeout=int(STALE_AFTER_S * 6))


def read_state(now: float | None = None, queue: str = GPU_QUEUE) -> dict:
    """Last published state of the `queue` worker plus `alive` (a heartbeat newer than STALE_AFTER_S)."""
    state = cache.get(STATE_KEYS[queue])
    if not state:
        worker = "model worker" if queue == GPU_QUEUE else f"{queue} worker"
        return {"alive": False, "state": "absent", "detail": f"no {worker} has reported"}
    age = (now or time.time()) - state.get("ts", 0)
    alive = state.get("state") != "stopped" and age <= STALE_AFTER_S
    return {**state, "alive": alive, "age_s": round(age, 1)}


def serves(state: dict) -> bool:
    """Alive, and its model has not failed to load."""
    return state["alive"] and (state.get("runtime") or {}).get("status") != "failed" and not state.get("model_error")


def chat_queue() -> tuple[str, dict]:
    """Where a chat reply goes now, and that worker's state: AUTODIDACT_CHAT_QUEUE, except that with
    no chat worker serving (none started, or its model failed) replies go to the gpu worker, slower
    behind its long jobs but answered."""
    if settings.AUTODIDACT_CHAT_QUEUE == CHAT_QUEUE:
        state = read_state(queue=CHAT_QUEUE)
        if serves(state):
            return CHAT_QUEUE, state
    return GPU_QUEUE, read_state(queue=GPU_QUEUE)


@task_prerun.connect
def _mark_busy(task_id=None, task=None, **_):
    queue = (task.request.delivery_info or {}).get("routing_key")
    if queue in MODEL_QUEUES:
        _busy_with[task_id] = (queue, task.name)


@task_postrun.connect
def _mark_idle(task_id=None, **_):
    _busy_with.pop(task_id, None)


def _preload_chat_model(runtime) -> None:
    """A chat worker loads the model new conversations talk to (AUTODIDACT_CHAT_MODEL)."""
    from webapp.serving.chat_models import default_value, resolve

    value = default_value()
    chosen = resolve(value) if value else None
    runtime.serve_choice(chosen.spec if chosen and chosen.value else None, chosen.version_id if chosen else None)


_threads_lock = threading.Lock()
_threads_holders = 0  # model workers of this process that set AUTODIDACT_MODEL_THREADS


def share_cores() -> None:
    """A model worker's llama.cpp models decode with settings.AUTODIDACT_MODEL_THREADS (half the
    cores where a chat worker runs beside the gpu worker). Only model workers: a command-line
    evaluation, a benchmark or the test process keeps every core. engine/ reads the variable when
    a model loads; set here, before the first load, and unset when the last model worker of this
    process stops (embedded workers are threads of a longer-lived process)."""
    global _threads_holders
    with _threads_lock:
        if settings.AUTODIDACT_MODEL_THREADS and (_threads_holders or "AUTODIDACT_MODEL_THREADS" not in os.environ):
            os.environ["AUTODIDACT_MODEL_THREADS"] = str(settings.AUTODIDACT_MODEL_THREADS)
            _threads_holders += 1


def release_cores() -> None:
    global _threads_holders
    with _threads_lock:
        if _threads_holders:
            _threads_holders -= 1
            if not _threads_holders:
                os.environ.pop("AUTODIDACT_MODEL_THREADS", None)


class ModelWorkerHeartbeat(bootsteps.StartStopStep):
    """Worker bootstep: publish each model queue's worker state every few seconds, for the model
    queues (`gpu`, `chat`) this worker consumes; each queue has its own runtime."""

    label = "model worker heartbeat"

    def __init__(self, worker, **kwargs):
        super().__init__(worker, **kwargs)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._queues: list[str] = []

    def start(self, worker):
        self._queues = [q for q in MODEL_QUEUES if q in worker.app.amqp.queues.consume_from]
        if not self._queues:
            return
        share_cores()
        from engine.lm.transformers_imports import warm
        from webapp.serving.model_runtime import for_queue

        warm()  # before the preload thread and the first task: the two must not race in transformers' lazy imports
        model = describe_model()
        if settings.AUTODIDACT_PRELOAD_MODEL and "model_error" not in model:
            for queue in self._queues:
                runtime = for_queue(queue)
                runtime.preload_in_background(
                    (lambda r=runtime: _preload_chat_model(r)) if queue == CHAT_QUEUE else None)

        def beat():
            while not self._stop.is_set():
                for queue in self._queues:
                    self._beat_once(worker, queue, model)
                self._stop.wait(HEARTBEAT_INTERVAL_S)

        self._thread = threading.Thread(target=beat, name="model-heartbeat", daemon=True)
        self._thread.start()

    @staticmethod
    def _beat_once(worker, queue: str, model: dict) -> None:
        from webapp.serving.model_runtime import for_queue

        runtime = for_queue(queue)
        busy = [name for task_queue, name in list(_busy_with.values()) if task_queue == queue]
        try:
            publish_state(worker.hostname, "busy" if busy else "idle", queue, task=busy[0] if busy else None,
                          runtime=runtime.report(), **model)
        except Exception:  # the cache being down must not kill the worker
            log.warning("model worker heartbeat failed", exc_info=True)
        try:
            runtime.swap_if_changed()  # a promotion or rollback: load the new model before it is asked for
        except Exception:
            log.warning("could not check the active model version", exc_info=True)

    def stop(self, worker):
        if self._thread is None:
            return
        release_cores()
        self._stop.set()
        self._thread.join(timeout=2)
        self._thread = None
        from webapp.serving.model_runtime import for_queue

        for queue in self._queues:
            for_queue(queue).close()
            try:
                publish_state(worker.hostname, "stopped", queue)
            except Exception:
                log.warning("could not publish the model worker's stop", exc_info=True)
