"""This process is stopping: a reply being streamed ends now (kept as far as it got, marked
cancelled) instead of holding the worker's warm shutdown, and so `up`'s Ctrl-C, until it is done."""
from __future__ import annotations

import threading

from celery.signals import worker_shutting_down

_stopping = threading.Event()


def stopping() -> bool:
    return _stopping.is_set()


def begin() -> None:
    _stopping.set()


def reset() -> None:
    """For a process that starts serving again (tests)."""
    _stopping.clear()


@worker_shutting_down.connect
def _on_worker_shutdown(**_) -> None:
    begin()
