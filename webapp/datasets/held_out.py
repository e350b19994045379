"""The test items of the benchmark data folder, by content (engine/datasets/held_out.py), for the
training snapshot and for conversations that start from pasted text."""
from __future__ import annotations

from django.conf import settings

from engine.datasets.held_out import HeldOutIndex, held_out_index


def held_out() -> HeldOutIndex:
    """Built once per process (about a second)."""
    return held_out_index(str(settings.AUTODIDACT_BENCHMARK_DATA))
