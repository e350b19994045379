"""The site's sandbox: one pool per process, hiding the data dir from sandboxed code."""
from __future__ import annotations

import functools
import os
import threading

from django.conf import settings

from engine.sandbox import Sandbox
from engine.sandbox.isolation import probe

_lock = threading.Lock()
_sandbox: Sandbox | None = None


def sandbox() -> Sandbox:
    """Started on first use (a verify worker's first task), closed when the process exits."""
    global _sandbox
    with _lock:
        if _sandbox is None:
            import atexit

            _sandbox = Sandbox(
                workers=int(os.environ.get("AUTODIDACT_SANDBOX_WORKERS", "0")) or None,
                level=configured_level(),
                hide=[settings.DATA_DIR],
            )
            atexit.register(_sandbox.close)
        return _sandbox


def configured_level() -> str:
    return os.environ.get("AUTODIDACT_SANDBOX_LEVEL", "auto")


@functools.cache
def isolation_report() -> dict:
    """What isolation sandboxed code gets here (probed once per process)."""
    return probe(configured_level()).as_dict()
