"""Verification jobs: validate their shape and size before anything runs, and key them by content.

A puzzle job is `{"id", "kind": "puzzle", "sat": src, "sol": src}`; a tests job is
`{"id", "kind": "tests", "code": src, "tests": [assert, ...], "setup": src?, "all_tests": bool?}`.
Either may carry `"timeout_s"`. Anything else is refused here with a clear reason.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from engine.sandbox.limits import Limits
from engine.sandbox.verdict import ERROR, REJECTED, Verdict

MAX_SOURCE_BYTES = 1 << 20  # per source field
MAX_TESTS = 1000
MAX_TEST_BYTES = 64 << 10


class JobError(ValueError):
    """The job cannot be run; `status` says whether it is malformed (error) or refused (rejected)."""

    def __init__(self, status: str, detail: str):
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass(frozen=True)
class Job:
    id: str
    kind: str
    fields: dict  # the content that decides the verdict (no id)
    timeout_s: float | None = None

    @property
    def key(self) -> str:
        """Content hash: identical jobs share one run and one cached verdict."""
        blob = json.dumps({"kind": self.kind, **self.fields, "timeout_s": self.timeout_s}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    def limits(self, base: Limits) -> Limits:
        return base.with_overrides(wall_s=self.timeout_s) if self.timeout_s else base

    def as_message(self) -> dict:
        return {"kind": self.kind, **self.fields}


def _source(job: dict, name: str, required: bool = True) -> str:
    value = job.get(name, None if required else "")
    if value is None:
        raise JobError(ERROR, f"missing field {name!r}")
    if not isinstance(value, str):
        raise JobError(ERROR, f"field {name!r} must be a string of source code")
    if len(value.encode("utf-8", "surrogatepass")) > MAX_SOURCE_BYTES:
        raise JobError(REJECTED, f"source {name!r} is too large ({len(value):,} characters; "
                                 f"the limit is {MAX_SOURCE_BYTES:,} bytes)")
    if "\x00" in value:
        raise JobError(REJECTED, f"source {name!r} contains a NUL byte")
    return value


def parse_job(job: object, fallback_id: str = "") -> Job:
    """Validate a job's shape; raises JobError."""
    if not isinstance(job, dict):
        raise JobError(ERROR, "a job must be a JSON object")
    job_id = job.get("id", fallback_id)
    if not isinstance(job_id, (str, int)) or isinstance(job_id, bool):
        raise JobError(ERROR, "job id must be a string or an integer")
    timeout = job.get("timeout_s")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0):
        raise JobError(ERROR, "timeout_s must be a positive number")
    kind = job.get("kind")
    if kind == "puzzle":
        fields = {"sat": _source(job, "sat"), "sol": _source(job, "sol")}
    elif kind == "tests":
        tests = job.get("tests")
        if not isinstance(tests, list) or not tests or not all(isinstance(t, str) for t in tests):
            raise JobError(ERROR, "field 'tests' must be a non-empty list of assert statements (strings)")
        if len(tests) > MAX_TESTS or any(len(t) > MAX_TEST_BYTES for t in tests):
            raise JobError(REJECTED, f"too many or too large tests (limits: {MAX_TESTS} tests, "
                                     f"{MAX_TEST_BYTES:,} bytes each)")
        all_tests = job.get("all_tests", False)
        if not isinstance(all_tests, bool):
            raise JobError(ERROR, "all_tests must be true or false")
        fields = {"code": _source(job, "code"), "setup": _source(job, "setup", required=False),
                  "tests": list(tests), "all_tests": all_tests}
    else:
        raise JobError(ERROR, f"unknown job kind {kind!r} (expected 'puzzle' or 'tests')")
    return Job(str(job_id), kind, fields, float(timeout) if timeout else None)


NOT_RUN = "not run"


def refusal(job_id: str, error: JobError) -> Verdict:
    """The verdict of a job refused before anything ran (so no isolation applied)."""
    return Verdict(id=job_id, status=error.status, detail=error.detail, isolation=NOT_RUN)
