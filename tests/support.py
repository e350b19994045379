"""Helpers for tests that run the product's real processes."""
from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parent.parent
OUTPUT_DIR = Path(os.environ.get("TEST_OUTPUT_DIR", ROOT / "test-output"))
BENCHMARK_DATA = Path(os.environ.get("AUTODIDACT_BENCHMARK_DATA") or ROOT.parent / "shared" / "data")
SERVER_ENV_VARS = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND")


def at_once(action, refused: type[Exception], threads: int = 4) -> list:
    """`action()` on `threads` threads released together (concurrent requests): what each
    returned, or the message of the `refused` error it raised. Each thread closes its own
    database connection."""
    from django.db import close_old_connections

    barrier, outcomes = threading.Barrier(threads), []

    def one():
        try:
            barrier.wait()
            outcomes.append(action())
        except refused as exc:
            outcomes.append(str(exc))
        finally:
            close_old_connections()

    workers = [threading.Thread(target=one) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return outcomes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def embedded_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a fresh machine: no Redis, no database URL, its own data dir."""
    env = {k: v for k, v in os.environ.items() if k not in SERVER_ENV_VARS and not k.startswith("DJANGO_")}
    env.update({"AUTODIDACT_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1"}, **extra)
    return env


class LineReader:
    """Collect a process's output lines on a thread so tests can wait for one."""

    def __init__(self, stream):
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream):
        for line in iter(stream.readline, ""):
            self.lines.append(line)
            self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, pattern: str, timeout: float) -> re.Match:
        regex = re.compile(pattern)
        for line in self.lines:
            if match := regex.search(line):
                return match
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                break
            if match := regex.search(line):
                return match
        raise AssertionError(f"no line matching {pattern!r} within {timeout} s; output:\n{self.text()}")

    def text(self) -> str:
        return "".join(self.lines)


class SiteProcess:
    """`python manage.py up` as a subprocess, stopped with Ctrl-C (SIGINT) like a person would."""

    def __init__(self, env: dict[str, str], port: int | None = None, sigint_ignored: bool = False):
        """`sigint_ignored`: started as a script's background job is, with SIGINT ignored."""
        self.port = port or free_port()
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", "up", "--port", str(self.port)],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
            preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if sigint_ignored else None,
        )
        self.output = LineReader(self.proc.stdout)
        self.url = f"http://localhost:{self.port}"

    def wait_until_up(self, timeout: float = 90) -> float:
        self.output.wait_for(r"Autodidact is up at", timeout)
        return time.monotonic() - self.started_at

    def admin_password(self) -> str:
        return self.output.wait_for(r"with password: (\S+)", 5).group(1)

    def descendants(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def interrupt(self, timeout: float = 40) -> int:
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        for child in self.descendants():
            child.kill()
        self.proc.kill()
        self.proc.wait()


def still_running(processes: list[psutil.Process]) -> list[str]:
    alive = []
    for proc in processes:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(f"{proc.pid} {' '.join(proc.cmdline())[:120]}")
        except psutil.NoSuchProcess:
            pass
    return alive


def die_with_parent() -> None:
    """preexec_fn: the child gets SIGTERM when the test process dies, so no worker outlives a run."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def start_worker(name: str, queues: str, pool: str, extra_env: dict | None = None) -> tuple[subprocess.Popen, LineReader]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "webapp", "worker", "-Q", queues, "-n", f"{name}@%h",
         "--pool", pool, "--concurrency", "1", "--without-mingle", "--without-gossip", "-l", "INFO"],
        cwd=ROOT, env={**os.environ, **(extra_env or {})}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, bufsize=1, start_new_session=True, preexec_fn=die_with_parent,
    )
    reader = LineReader(proc.stdout)
    try:
        reader.wait_for(r"ready\.", timeout=60)
    except BaseException:
        stop_worker(proc)
        raise
    return proc, reader


SLOW_JOB = "def f(x):\n    import time\n    time.sleep(1.5)\n    return x + 1"


def slow_jobs(count: int = 6) -> list[dict]:
    """Sandbox jobs of 1.5 s each; the odd ones pass, the even ones fail."""
    return [{"id": f"job{i}", "kind": "tests", "code": SLOW_JOB, "tests": [f"assert f({i}) == {i + 1 if i % 2 else i}"]}
            for i in range(count)]


def batch_after_a_kill(jobs: list[dict], delay_s: float) -> list[dict]:
    """`jobs` as one verify batch on a queue of its own, whose worker is killed (-9) `delay_s` after
    the batch started; the verdicts the next worker returns (the batch is redelivered to it)."""
    from webapp.core.tasks import verify_batch

    queue = f"verify-redelivery-{uuid.uuid4().hex[:8]}"
    env = {"CELERY_VISIBILITY_TIMEOUT": "3"}
    first, _ = start_worker("verify-doomed", queue, "prefork", env)
    result = verify_batch.apply_async((jobs,), queue=queue)
    try:
        deadline = time.monotonic() + 30
        while result.state != "STARTED":
            if time.monotonic() > deadline:
                raise TimeoutError("the batch never started")
            time.sleep(0.1)
        time.sleep(delay_s)
    finally:
        stop_worker(first, signal.SIGKILL)
    second, _ = start_worker("verify-rescuer", queue, "prefork", env)
    try:
        return result.get(timeout=120)
    finally:
        stop_worker(second)


def stop_worker(proc: subprocess.Popen, sig=signal.SIGTERM) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def wait_for_http(url: str, timeout: float = 60) -> None:
    """Until something answers HTTP at `url` (any status)."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"nothing answered at {url} within {timeout} s")


def sign_in_admin(page, site: SiteProcess, password: str, next_path: str) -> None:
    """Sign in through the login form as the `admin` that `up` created, landing on `next_path`."""
    page.goto(f"{site.url}/accounts/login/?next={next_path}")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def user_with_roles(name: str, *roles: str, staff: bool = False):
    """A user in the given role groups (created if missing), password "x"."""
    from django.contrib.auth.models import Group, User

    user = User.objects.create_user(name, password="x", is_staff=staff)
    for role in roles:
        user.groups.add(Group.objects.get_or_create(name=role)[0])
    return user


def signed_in_client(user):
    """A Django test client logged in as `user`."""
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client


def require_llama_cpp() -> None:
    """Fail (not skip) where llama.cpp is missing: `make install` builds it, so its absence is a broken install."""
    from engine.lm import llama_cpp_backend

    if not llama_cpp_backend.available():
        pytest.fail("llama-cpp-python is not installed: `make install` builds it (see requirements-llama.txt)")
