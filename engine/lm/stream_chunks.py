"""Token deltas grouped into numbered chunks, sent at most every ~100 ms.

A per-token message is too many for a channel layer (Redis drops messages on a channel over
capacity) and for the database; numbered chunks also let a reconnecting browser resume from
the last one it saw. The first text goes out at once, so time to first token is not delayed.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

from engine.lm.generation import Completion


@dataclass
class StreamChunk:
    seq: int  # 0, 1, 2, ... in order; the final chunk has done=True
    text: str
    done: bool = False
    finish_reason: str | None = None
    tokens: int | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def coalesce(stream: Iterator[str], interval_s: float = 0.1,
             clock: Callable[[], float] = time.monotonic) -> Iterator[StreamChunk]:
    """Chunks from a generator of text deltas whose return value is a Completion (as
    `LanguageModel.stream` is). The final chunk carries the finish reason and token count."""
    seq, pending, last_sent = 0, [], None
    try:
        while True:
            pending.append(next(stream))
            now = clock()
            if last_sent is None or now - last_sent >= interval_s:
                yield StreamChunk(seq, "".join(pending))
                seq, pending, last_sent = seq + 1, [], now
    except StopIteration as finished:
        completion: Completion | None = finished.value
    yield StreamChunk(seq, "".join(pending), done=True,
                      finish_reason=completion.finish_reason if completion else None,
                      tokens=completion.tokens if completion else None)
