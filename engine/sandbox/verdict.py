"""What the sandbox says about a job: a status from a closed set, plus short, displayable detail."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from engine.sandbox.pristine import BUILTINS

__builtins__ = BUILTINS  # noqa: A001 - names here resolve in the pristine builtins (see pristine.py)

PASSED = "passed"
FAILED = "failed"  # wrong answer, or an assertion failed
ERROR = "error"  # syntax error, exception, crash, early exit
TIMEOUT = "timeout"
MEMORY_EXCEEDED = "memory_exceeded"
OUTPUT_EXCEEDED = "output_exceeded"
REJECTED = "rejected"  # refused before running: too large, or a form the sandbox does not accept
STATUSES = (PASSED, FAILED, ERROR, TIMEOUT, MEMORY_EXCEEDED, OUTPUT_EXCEEDED, REJECTED)
DETAIL_LIMIT = 500


def short(text: object, limit: int = DETAIL_LIMIT) -> str:
    """Printable, bounded text (the detail is shown in pages and logs)."""
    text = "".join(ch if ch.isprintable() or ch in "\n\t" else "?" for ch in str(text))
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass
class Verdict:
    id: str
    status: str
    detail: str = ""
    tests: list[dict] = field(default_factory=list)
    duration_ms: float = 0.0
    isolation: str = ""
    cached: bool = False

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"unknown verdict status {self.status!r}")
        self.detail = short(self.detail)

    @property
    def passed(self) -> bool:
        return self.status == PASSED

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Verdict:
        return cls(**{k: data[k] for k in ("id", "status", "detail", "tests", "duration_ms", "isolation", "cached")
                      if k in data})
