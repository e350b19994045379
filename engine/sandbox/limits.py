"""Resource limits for one sandboxed run; every verdict is only as meaningful as these."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

MAX_WALL_S = 120.0


@dataclass(frozen=True)
class Limits:
    wall_s: float = 5.0  # wall clock per run (a puzzle has two runs: solve, then check)
    cpu_s: int = 0  # CPU seconds per run; 0 = wall_s rounded up + 1
    memory_mb: int = 1024  # address space
    output_bytes: int = 1 << 20  # stdout + stderr together; more is `output_exceeded`
    file_mb: int = 16  # largest file a run may write (in its private tmpfs)
    nproc: int = 64  # processes of the run's user at once (bounds fork bombs)
    nofile: int = 256  # open file descriptors
    answer_bytes: int = 16 << 20  # the encoded answer / test values crossing back

    @property
    def effective_cpu_s(self) -> int:
        return self.cpu_s or int(self.wall_s) + 1

    def with_overrides(self, **changes) -> Limits:
        """Apply per-job overrides, bounded so a job cannot ask for unlimited resources."""
        allowed = {f.name for f in fields(self)}
        clean = {k: v for k, v in changes.items() if k in allowed and v is not None}
        if "wall_s" in clean:
            clean["wall_s"] = min(max(float(clean["wall_s"]), 0.05), MAX_WALL_S)
        return replace(self, **clean)

    def as_dict(self) -> dict:
        return asdict(self)
