"""Tokens per second, computed one way everywhere a speed is reported (evaluation, self-play stages,
training): rounded to 0.1, and 0.0 when nothing was timed."""
from __future__ import annotations


def tokens_per_s(tokens: float, seconds: float) -> float:
    return round(float(tokens) / float(seconds), 1) if tokens and seconds and seconds > 0 else 0.0
