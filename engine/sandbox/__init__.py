"""Verified execution of untrusted puzzles, solutions and tests (see isolation.py for how).

    from engine.sandbox import verify, verify_many
    verify({"id": "p1", "kind": "puzzle", "sat": "def sat(x: int): return x > 3", "sol": "def sol(): return 4"})

The module-level functions share one process-wide `Sandbox`, configured from the environment
alone: AUTODIDACT_SANDBOX_WORKERS (default: the number of cores), AUTODIDACT_SANDBOX_LEVEL (auto |
namespaces+uid | namespaces | rlimits) and AUTODIDACT_SANDBOX_HIDE (paths to hide, separated
by ':'; AUTODIDACT_DATA_DIR is always hidden). The web app does not use it: it has its own seam
(webapp/core/verification.py), which also hides the site's data folder.
"""
from __future__ import annotations

import _thread
import os
from collections.abc import Iterable, Iterator

from engine.sandbox.limits import Limits
from engine.sandbox.verdict import STATUSES, Verdict

__all__ = ["Limits", "STATUSES", "Sandbox", "Verdict", "configured_level", "default_sandbox", "verify",
           "verify_many"]

_default = None
_default_lock = _thread.allocate_lock()  # not `threading`: workers import this package too


def __getattr__(name: str):
    # The pool (subprocess, threading, logging) loads on first use: sandbox workers import this
    # package too, and every module they hold makes each of their forks slower.
    if name == "Sandbox":
        from engine.sandbox.pool import Sandbox

        return Sandbox
    raise AttributeError(name)


def configured_level() -> str:
    return os.environ.get("AUTODIDACT_SANDBOX_LEVEL", "auto")


def default_sandbox():
    """The process-wide Sandbox, created on first use and closed at exit. What it hides depends on the
    environment only, so every caller gets the same sandbox whatever the order of calls."""
    global _default
    with _default_lock:
        if _default is None:
            import atexit

            from engine.sandbox.pool import Sandbox

            hidden = [p for p in os.environ.get("AUTODIDACT_SANDBOX_HIDE", "").split(":") if p]
            if os.environ.get("AUTODIDACT_DATA_DIR"):
                hidden.append(os.environ["AUTODIDACT_DATA_DIR"])
            _default = Sandbox(
                workers=int(os.environ.get("AUTODIDACT_SANDBOX_WORKERS", "0")) or None,
                level=configured_level(),
                hide=hidden,
            )
            atexit.register(_default.close)
        return _default


def verify(job: dict) -> Verdict:
    return default_sandbox().verify(job)


def verify_many(jobs: Iterable[dict], workers: int | None = None) -> Iterator[Verdict]:
    return default_sandbox().verify_many(jobs, workers=workers)
