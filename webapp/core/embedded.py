"""Celery workers and beat as threads of the main job, for the embedded (no-Redis) mode.

Kombu's memory transport and the in-memory channel layer only reach threads of one process,
so in embedded mode the web server, the workers and beat share it. These are real Celery
workers (messages are serialised to JSON, routed by queue and acknowledged), not
`task_always_eager`.
"""
from __future__ import annotations

import logging
import socket
import threading
from dataclasses import dataclass

from celery._state import _set_task_join_will_block
from celery.beat import EmbeddedService
from celery.worker import state as worker_state

from webapp.celery_app import make_celery_app
from webapp.core import shutdown

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerSpec:
    name: str
    queues: tuple[str, ...]
    pool: str
    concurrency: int


# Mirrors the Procfile: sandbox checks and bookkeeping on a thread pool, the model for long jobs
# alone, and the chat's model alone beside it (its own runtime: a reply never waits for the lock of
# the model a generation step holds).
EMBEDDED_WORKERS = (
    WorkerSpec("verify", ("verify", "default"), "threads", 2),
    WorkerSpec("gpu", ("gpu",), "solo", 1),
    WorkerSpec("chat", ("chat",), "solo", 1),
)


def embedded_workers() -> tuple[WorkerSpec, ...]:
    """The workers this deployment runs: no chat worker where AUTODIDACT_CHAT_QUEUE=gpu."""
    from django.conf import settings

    return tuple(s for s in EMBEDDED_WORKERS if s.name != "chat" or settings.AUTODIDACT_CHAT_QUEUE == "chat")


class EmbeddedWorkers:
    def __init__(self, specs=None, with_beat: bool = True, loglevel: str = "WARNING"):
        self.specs = embedded_workers() if specs is None else specs
        self.with_beat = with_beat
        self.loglevel = loglevel
        self._threads: list[threading.Thread] = []
        self._workers = []
        self._beat = None

    def start(self, ready_timeout: float = 60.0) -> None:
        host = socket.gethostname()
        worker_state.should_terminate = None
        shutdown.reset()
        ready_events = []
        for spec in self.specs:
            app = make_celery_app(f"autodidact-{spec.name}")
            app.finalize()
            ready = threading.Event()
            ready_events.append(ready)

            class ReadyWorkController(app.WorkController):
                def on_consumer_ready(self, consumer, _ready=ready):
                    super().on_consumer_ready(consumer)
                    _ready.set()

            worker = ReadyWorkController(
                hostname=f"{spec.name}@{host}",
                queues=list(spec.queues),
                pool=spec.pool,
                concurrency=spec.concurrency,
                loglevel=self.loglevel,
                without_heartbeat=True,
                without_mingle=True,
                without_gossip=True,
            )
            thread = threading.Thread(target=worker.start, name=f"celery-{spec.name}", daemon=True)
            thread.start()
            self._workers.append(worker)
            self._threads.append(thread)
        for spec, ready in zip(self.specs, ready_events):
            if not ready.wait(ready_timeout):
                raise RuntimeError(f"embedded worker {spec.name!r} did not start in {ready_timeout:.0f} s")
        # A starting worker marks the whole process as "inside a worker", where waiting on a
        # result is forbidden. Here the same process also serves web requests, which may wait.
        _set_task_join_will_block(False)
        if self.with_beat:
            beat_app = make_celery_app("autodidact-beat")
            self._beat = EmbeddedService(
                beat_app, thread=True, scheduler_cls=beat_app.conf.beat_scheduler
            )
            self._beat.start()

    def stop(self, timeout: float = 15.0) -> None:
        """Ask every worker to finish its current task and exit; wait for them. A reply being
        streamed stops at its next token (webapp/core/shutdown.py)."""
        shutdown.begin()
        if self._beat is not None:
            self._beat.stop()
        worker_state.should_terminate = 0
        for worker in self._workers:
            try:
                worker.stop(in_sighandler=False, exitcode=0)
            except Exception:  # a worker that already stopped
                log.debug("stopping %s", worker.hostname, exc_info=True)
        for thread in self._threads:
            thread.join(timeout)
            if thread.is_alive():
                log.warning("worker thread %s did not stop within %.0f s", thread.name, timeout)
        worker_state.should_terminate = None
