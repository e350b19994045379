"""`make test` on any machine: the suite runs against real PostgreSQL and Redis. When the configured
ones (DATABASE_URL, REDIS_URL) answer, they are used; when not, throwaway ones are started for this
run (a PostgreSQL cluster initialised in a temporary folder, `redis-server` on a free port) and
stopped afterwards. Where their programs are missing, it says the one command that installs them.

    python -m tests.services [pytest arguments]
"""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

INSTALL_HINT = "sudo apt-get install -y postgresql redis-server   (Debian/Ubuntu; or your package manager's)"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def postgres_answers(url: str) -> bool:
    import psycopg

    try:
        parts = urlsplit(url)
        with psycopg.connect(host=parts.hostname, port=parts.port or 5432, user=parts.username or "postgres",
                             dbname="postgres", connect_timeout=2):
            return True
    except Exception:
        return False


def redis_answers(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2).ping())
    except Exception:
        return False


def find_program(name: str) -> str | None:
    """On PATH, or in Debian's versioned PostgreSQL folder (the newest)."""
    versions = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return shutil.which(name) or (versions[-1] if versions else None)


def wait_until(check, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start within {timeout:.0f} s")
        time.sleep(0.2)


class ThrowawayPostgres:
    """A PostgreSQL cluster in a temporary folder, trust auth, on a free port; gone after stop()."""

    def __init__(self):
        self.initdb, self.pg_ctl = find_program("initdb"), find_program("pg_ctl")
        if not (self.initdb and self.pg_ctl):
            raise FileNotFoundError("PostgreSQL's initdb and pg_ctl")
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="autodidact-pg-"))
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/test"

    def _run(self, *command: str) -> None:
        # initdb refuses to run as root: as root, the cluster belongs to the `postgres` user.
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*prefix, *command], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def start(self) -> ThrowawayPostgres:
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres")
        data = str(self.folder / "data")
        self._run(self.initdb, "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8")
        self._run(self.pg_ctl, "-D", data, "-w", "-l", str(self.folder / "log"), "-o",
                  f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
        wait_until(lambda: postgres_answers(self.url), "the throwaway PostgreSQL")
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres",
                             autocommit=True) as conn:
            conn.execute("CREATE DATABASE test")
        return self

    def stop(self) -> None:
        try:
            self._run(self.pg_ctl, "-D", str(self.folder / "data"), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


class ThrowawayRedis:
    def __init__(self):
        self.program = shutil.which("redis-server")
        if not self.program:
            raise FileNotFoundError("redis-server")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/15"
        self.proc: subprocess.Popen | None = None

    def start(self) -> ThrowawayRedis:
        self.proc = subprocess.Popen([self.program, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
                                      "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: redis_answers(self.url), "the throwaway Redis")
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


def main(pytest_args: list[str]) -> int:
    database_url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15")
    started = []
    try:
        if not postgres_answers(database_url):
            print(f"PostgreSQL does not answer at {database_url}: starting a throwaway one for this run", flush=True)
            started.append(ThrowawayPostgres().start())
            database_url = started[-1].url
        if not redis_answers(redis_url):
            print(f"Redis does not answer at {redis_url}: starting a throwaway one for this run", flush=True)
            started.append(ThrowawayRedis().start())
            redis_url = started[-1].url
        env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url}
        return subprocess.run([sys.executable, "-m", "pytest", *pytest_args], env=env).returncode
    except FileNotFoundError as exc:
        print(f"The tests need PostgreSQL and Redis; {exc} is not installed here. Install them with:\n  {INSTALL_HINT}",
              file=sys.stderr)
        return 2
    finally:
        for service in reversed(started):
            service.stop()


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
