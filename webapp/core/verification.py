"""The site's sandbox: the engine's process-wide pool, also hiding the data dir."""
from __future__ import annotations

import functools

from django.conf import settings

from engine.sandbox import configured_level, default_sandbox
from engine.sandbox.isolation import probe


def sandbox():
    """Started on first use (a verify worker's first task), closed when the process exits."""
    return default_sandbox(hide=[settings.DATA_DIR])


@functools.cache
def isolation_report() -> dict:
    """What isolation sandboxed code gets here (probed once per process)."""
    return probe(configured_level()).as_dict()
