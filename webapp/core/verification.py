"""The site's only way to the sandbox (tests/test_sandbox_seam.py keeps it so): one Sandbox per
process that hides what sandboxed code must never read, decided by the settings alone, never by which
caller came first: the data folder (database, secret key, checkpoints, logs), the folder of a SQLite
database that lives elsewhere, a model store folder outside it, and AUTODIDACT_SANDBOX_HIDE."""
from __future__ import annotations

import atexit
import functools
import os
import threading
from pathlib import Path

from django.conf import settings

from engine.lm.model_store import local_folder
from engine.sandbox import Sandbox, configured_level
from engine.sandbox.isolation import probe

_lock = threading.Lock()
_sandbox = None


def hidden_paths() -> tuple[str, ...]:
    """Folders sandboxed code sees as empty, whatever the call order (a pure function of the settings)."""
    paths = [Path(settings.DATA_DIR)]
    database = settings.DATABASES["default"]
    if database["ENGINE"].endswith("sqlite3") and str(database["NAME"]) not in ("", ":memory:"):
        paths.append(Path(database["NAME"]).parent)
    store = local_folder(settings.AUTODIDACT_MODEL_STORE)
    if store is not None:
        paths.append(store)
    paths += [Path(p) for p in os.environ.get("AUTODIDACT_SANDBOX_HIDE", "").split(":") if p]
    return tuple(dict.fromkeys(str(p.expanduser().resolve()) for p in paths))


def sandbox():
    """Started on first use (a verify worker's first task), closed when the process exits."""
    global _sandbox
    with _lock:
        if _sandbox is None:
            _sandbox = Sandbox(workers=int(os.environ.get("AUTODIDACT_SANDBOX_WORKERS", "0")) or None,
                               level=configured_level(), hide=hidden_paths())
            atexit.register(_sandbox.close)
        return _sandbox


@functools.cache
def isolation_report() -> dict:
    """What isolation sandboxed code gets here (probed once per process)."""
    return probe(configured_level()).as_dict()
