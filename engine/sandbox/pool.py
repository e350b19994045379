"""The service side of the sandbox: warm workers, job dispatch, dedupe and a verdict cache.

`Sandbox.verify_many` checks many jobs on several workers and yields verdicts as they finish.
Identical jobs (same content, same limits) run once. Verdicts are cached by content hash.
A worker that dies or hangs costs its one job an `error` verdict, and a fresh worker replaces it.
"""
from __future__ import annotations

import json
import logging
import os
import selectors
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from pathlib import Path

from engine.sandbox import framing
from engine.sandbox.isolation import WorkerPlan
from engine.sandbox.jobs import Job, JobError, parse_job, refusal
from engine.sandbox.limits import Limits
from engine.sandbox.verdict import ERROR, Verdict

log = logging.getLogger(__name__)
ROOT = str(Path(__file__).resolve().parents[2])
BOOT = (
    "import sys; sys.path[:] = [p for p in sys.path if p not in ('', '.')]; "
    f"sys.path.insert(0, {ROOT!r}); from engine.sandbox.zygote import main; main(sys.argv)"
)
WORKER_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONHASHSEED": "0"}
START_TIMEOUT_S = 60.0


class WorkerDied(RuntimeError):
    pass


class _Worker:
    """One zygote process and its control pipes."""

    def __init__(self, python: str, plan: WorkerPlan):
        self.proc = subprocess.Popen(
            [python, "-s", "-B", "-c", BOOT, json.dumps(plan.as_dict())],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None, env=WORKER_ENV, cwd="/",
            start_new_session=True,
        )
        self.fd_in = self.proc.stdin.fileno()
        self.fd_out = self.proc.stdout.fileno()
        self.reader = framing.FrameReader(max_message=64 << 20)
        hello = self._read_blocking(START_TIMEOUT_S)
        if "hello" not in hello:
            raise WorkerDied(f"sandbox worker sent {hello!r} instead of hello")
        self.report = hello["hello"]
        self.job: Job | None = None
        self.deadline = 0.0
        self.started = 0.0

    def _read_blocking(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(self.fd_out, selectors.EVENT_READ)
            while not self.reader.messages:
                left = deadline - time.monotonic()
                if left <= 0 or not selector.select(left):
                    self.kill()
                    raise WorkerDied("sandbox worker did not answer in time")
                self.feed()
        return self.reader.messages.popleft()

    def feed(self) -> None:
        chunk = os.read(self.fd_out, 1 << 16)
        if not chunk:
            raise WorkerDied(f"sandbox worker exited (code {self.proc.poll()})")
        self.reader.feed(chunk)

    def send(self, job: Job, limits: Limits) -> None:
        self.job = job
        self.started = time.monotonic()
        # Two runs per puzzle, plus start-up and clean-up slack.
        self.deadline = self.started + 2 * limits.wall_s + 10.0
        framing.write_message(self.fd_in, {"op": "verify", "job": job.as_message(), "limits": limits.as_dict()})

    @property
    def level(self) -> str:
        return self.report.get("level", "?")

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, 9)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass

    def close(self) -> None:
        try:
            self.proc.stdin.close()  # the worker exits at end of input
            self.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self.kill()


class Sandbox:
    """A pool of warm sandbox workers. Thread-safe: concurrent callers share the workers."""

    def __init__(self, workers: int | None = None, limits: Limits | None = None, level: str = "auto",
                 hide: Iterable[str] = (), uid_base: int = 64000, cache_size: int = 100_000,
                 python: str = sys.executable):
        self.max_workers = max(1, workers or os.cpu_count() or 1)
        self.limits = limits or Limits()
        self.level = level
        self.hide = [str(Path(p).resolve()) for p in hide]
        self.uid_base = uid_base
        self.python = python
        self.cache_size = cache_size
        self._cache: OrderedDict[str, dict] = OrderedDict()
        self._idle: list[_Worker] = []
        self._spawned = 0
        self._next_slot = 0
        self._lock = threading.Condition()
        self._report: dict | None = None
        self.stats = {"runs": 0, "cache_hits": 0, "deduplicated": 0, "workers_replaced": 0}

    # -- workers ---------------------------------------------------------------------------
    def _spawn(self) -> _Worker:
        with self._lock:
            slot = self._next_slot
            self._next_slot = (self._next_slot + 1) % 1000
        worker = _Worker(self.python, WorkerPlan(self.level, self.uid_base + slot, self.hide))
        if self._report is None:
            self._report = worker.report
            for warning in worker.report.get("warnings", []):
                log.warning("%s", warning)
        return worker

    def _acquire(self, want: int) -> list[_Worker]:
        """At least one worker (waiting if all are busy), up to `want`."""
        with self._lock:
            while not self._idle and self._spawned >= self.max_workers:
                self._lock.wait()
            taken = self._idle[:want]
            del self._idle[:want]
            new = min(want - len(taken), self.max_workers - self._spawned)
            self._spawned += new
        try:
            taken += [self._spawn() for _ in range(new)]
        except Exception:
            with self._lock:
                self._spawned -= new
                self._idle.extend(taken)
                self._lock.notify_all()
            raise
        return taken

    def _release(self, worker: _Worker | None, dead: bool = False) -> None:
        with self._lock:
            if dead or worker is None:
                self._spawned -= 1
            else:
                self._idle.append(worker)
            self._lock.notify_all()

    @property
    def isolation(self) -> dict:
        """The isolation report of this sandbox's workers (starts one if none ran yet)."""
        if self._report is None:
            self._release(self._acquire(1)[0])
        return self._report

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
            self._spawned -= len(idle)
        for worker in idle:
            worker.close()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- verification ------------------------------------------------------------------------
    def verify(self, job: dict) -> Verdict:
        return next(iter(self.verify_many([job], workers=1)))

    def verify_many(self, jobs: Iterable[dict], workers: int | None = None) -> Iterator[Verdict]:
        """Yield one verdict per job, in the order they finish."""
        groups: OrderedDict[str, tuple[Job, Limits, list[str]]] = OrderedDict()
        for position, raw in enumerate(jobs):
            fallback = f"job-{position + 1}"
            try:
                job = parse_job(raw, fallback)
            except JobError as exc:
                job_id = raw.get("id", fallback) if isinstance(raw, dict) else fallback
                yield refusal(str(job_id), exc)
                continue
            limits = job.limits(self.limits)
            key = f"{job.key}:{json.dumps(limits.as_dict(), sort_keys=True)}"
            cached = self._cache_get(key)
            if cached is not None:
                self.stats["cache_hits"] += 1
                yield Verdict.from_dict({**cached, "id": job.id, "cached": True, "duration_ms": 0.0})
            elif key in groups:
                self.stats["deduplicated"] += 1
                groups[key][2].append(job.id)
            else:
                groups[key] = (job, limits, [job.id])
        if groups:
            yield from self._run_groups(groups, workers or self.max_workers)

    def _run_groups(self, groups, want: int) -> Iterator[Verdict]:
        pending = list(groups.items())
        pending.reverse()
        busy: dict[int, tuple[_Worker, str]] = {}
        workers = self._acquire(min(want, len(pending)))
        free = list(workers)
        try:
            with selectors.DefaultSelector() as selector:
                while pending or busy:
                    while free and pending:
                        worker = free.pop()
                        key, (job, limits, _) = pending.pop()
                        try:
                            worker.send(job, limits)
                        except OSError:
                            pending.append((key, groups[key]))
                            self._replace(worker, free)
                            continue
                        busy[worker.fd_out] = (worker, key)
                        selector.register(worker.fd_out, selectors.EVENT_READ)
                    if not busy:  # every worker was lost and not replaced: wait for one
                        free.extend(self._acquire(1))
                        continue
                    timeout = max(0.0, min(w.deadline for w, _ in busy.values()) - time.monotonic())
                    ready = {key.fd for key, _ in selector.select(timeout)}
                    for fd, (worker, key) in list(busy.items()):
                        verdict = self._poll(worker, fd in ready)
                        if verdict is None:
                            continue
                        selector.unregister(fd)
                        del busy[fd]
                        if verdict.pop("_worker_lost", False):
                            self._replace(worker, free)
                        else:
                            if not verdict.pop("no_cache", False):
                                self._cache_put(key, verdict)
                            free.append(worker)
                        job, _, ids = groups[key]
                        self.stats["runs"] += 1
                        for job_id in ids:
                            yield Verdict.from_dict({**verdict, "id": job_id})
        finally:
            for worker, _ in busy.values():  # abandoned mid-job (the caller stopped iterating)
                worker.kill()
                self._release(None, dead=True)
            for worker in free:
                self._release(worker)

    def _poll(self, worker: _Worker, readable: bool) -> dict | None:
        """The verdict if the worker has one; an error verdict if it died or overran."""
        try:
            if readable:
                worker.feed()
            if worker.reader.messages:
                answer = worker.reader.messages.popleft()
                verdict = answer["verdict"]
                verdict["duration_ms"] = round((time.monotonic() - worker.started) * 1000, 2)
                verdict.setdefault("isolation", worker.level)
                return verdict
        except (WorkerDied, framing.FrameError, KeyError, TypeError, OSError) as exc:
            log.warning("sandbox worker lost: %s", exc)
            return self._lost(worker, "the sandbox worker died during this job")
        if time.monotonic() > worker.deadline:
            return self._lost(worker, "the sandbox worker stopped responding during this job")
        return None

    @staticmethod
    def _lost(worker: _Worker, detail: str) -> dict:
        return {"status": ERROR, "detail": detail, "tests": [], "isolation": worker.level,
                "duration_ms": round((time.monotonic() - worker.started) * 1000, 2), "_worker_lost": True}

    def _replace(self, worker: _Worker, free: list[_Worker]) -> None:
        worker.kill()
        self.stats["workers_replaced"] += 1
        try:
            free.append(self._spawn())
        except Exception:
            log.exception("could not start a replacement sandbox worker")
            self._release(None, dead=True)

    # -- cache -----------------------------------------------------------------------------
    def _cache_get(self, key: str) -> dict | None:
        with self._lock:
            verdict = self._cache.get(key)
            if verdict is not None:
                self._cache.move_to_end(key)
            return verdict

    def _cache_put(self, key: str, verdict: dict) -> None:
        if self.cache_size <= 0:
            return
        with self._lock:
            self._cache[key] = {k: v for k, v in verdict.items() if k not in ("id", "duration_ms", "cached")}
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
