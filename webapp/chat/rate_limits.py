"""Per-user limits on how many model replies may be requested (fixed windows in the shared cache).

AUTODIDACT_CHAT_RATE_LIMIT is a comma-separated list such as "20/minute,300/day"; "" turns it off.
Staff are limited too: the model worker is shared by everyone.
"""
from __future__ import annotations

import time

from django.conf import settings
from django.core.cache import cache

from webapp.refusals import RateLimited

__all__ = ["RateLimited", "consume", "parse_limits"]

PERIODS = {"second": 1, "s": 1, "minute": 60, "min": 60, "m": 60, "hour": 3600, "h": 3600, "day": 86400, "d": 86400}




def parse_limits(spec: str) -> list[tuple[int, int, str]]:
    """"20/minute,300/day" -> [(20, 60, "20/minute"), (300, 86400, "300/day")]; raises ValueError."""
    limits = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        count, _, period = part.partition("/")
        if not count.strip().isdigit() or period.strip().lower() not in PERIODS:
            raise ValueError(f"bad rate limit {part!r}: write it as COUNT/PERIOD, e.g. 20/minute")
        limits.append((int(count), PERIODS[period.strip().lower()], part))
    return limits


def consume(user_id: int, now: float | None = None) -> None:
    """Count one reply for the user, or raise RateLimited (counting nothing) if a window is full."""
    now = now or time.time()
    keys = []
    for count, period, label in parse_limits(settings.AUTODIDACT_CHAT_RATE_LIMIT):
        window = int(now // period)
        key = f"chat:rate:{user_id}:{period}:{window}"
        cache.add(key, 0, timeout=period + 5)
        if (cache.get(key) or 0) >= count:
            retry_after_s = int(period - now % period) + 1
            raise RateLimited(f"you have reached your limit of model replies ({label}); "
                              f"try again in {retry_after_s} s", retry_after_s)
        keys.append(key)
    for key in keys:
        try:
            cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.set(key, 1, timeout=60)


def reset(user_id: int, now: float | None = None) -> None:
    """Forget the user's counts in the current windows (an admin lifting a limit early)."""
    now = now or time.time()
    cache.delete_many([f"chat:rate:{user_id}:{period}:{int(now // period)}"
                       for _, period, _ in parse_limits(settings.AUTODIDACT_CHAT_RATE_LIMIT)])
