"""The site under load, in server mode, every process separate as in production: N signed-in
users chat at once over the Redis channel layer while a generation run and 1,000 sandbox checks
are queued. It starts `manage.py up` against a database and a Redis index of its own (created here,
dropped after), and prints:

- per reply: time to first token and to the end, from the moment its user sent the message
  (p50 / p95 over the users), and chunks lost or repeated on the socket (checked against the reply
  the database holds, which must equal the chunks received);
- sandbox checks/s for the queued checks (verify workers, measured from queueing to the last verdict);
- the peak resident memory of each process (web, workers, beat, their children).

    python benchmarks/load_bench.py [--users 20] [--tokens 64] [--checks 1000] [--no-generation]
        [--database-url postgres://postgres@127.0.0.1:5432/postgres] [--redis-url redis://127.0.0.1:6379/14]

The websocket clients are autobahn's asyncio protocol (a maintained client already installed with
daphne), one per user, all in this process.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support import SiteProcess  # noqa: E402

MESSAGES = ["Write a Python function that reverses a string.", "Write a function that checks whether a number "
            "is prime.", "How do I read a CSV file in Python?", "Write a function that merges two sorted lists."]
PASSWORD = "load-bench-pw"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))] if ordered else float("nan")


class MemoryWatch:
    """Peak RSS of every process under the site, by its role (the Procfile name in its command)."""

    ROLES = (("daphne", "web"), ("-n verify@", "worker-verify"), ("-n gpu@", "worker-gpu"),
             ("-n chat@", "worker-chat"), (" beat", "beat"), ("manage.py up", "up (the supervisor)"))

    def __init__(self, site: SiteProcess):
        self.site, self.peaks, self._done = site, {}, threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def role(self, process) -> str:
        """Its Procfile role, or its nearest ancestor's with " children" (sandbox processes, pools)."""
        for depth, candidate in enumerate([process, *self._parents(process)]):
            try:
                line = " ".join(candidate.cmdline())
            except Exception:  # noqa: BLE001 - it ended meanwhile
                return "?"
            for needle, name in self.ROLES:
                if needle in line:
                    return name if depth == 0 else f"{name} children"
        return "other"

    @staticmethod
    def _parents(process) -> list:
        try:
            return process.parents()
        except Exception:  # noqa: BLE001
            return []

    def _loop(self):
        import psutil

        while not self._done.wait(0.5):
            totals: dict[str, int] = {}
            for process in [psutil.Process(self.site.proc.pid), *self.site.descendants()]:
                try:
                    totals[self.role(process)] = totals.get(self.role(process), 0) + process.memory_info().rss
                except psutil.Error:
                    continue
            for role, rss in totals.items():
                if role != "?":
                    self.peaks[role] = max(self.peaks.get(role, 0), rss)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._done.set()
        self._thread.join()


def make_users(count: int) -> list[dict]:
    """Users, a conversation each and a signed-in session, made straight in the site's database."""
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.auth.models import User
    from django.contrib.sessions.backends.db import SessionStore

    from webapp.chat.models import Conversation

    made = []
    for index in range(count):
        user = User.objects.create_user(f"load-{index}", password=PASSWORD)
        session = SessionStore()
        session[SESSION_KEY], session[BACKEND_SESSION_KEY] = str(user.pk), "django.contrib.auth.backends.ModelBackend"
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        session.create()
        made.append({"user": user.pk, "session": session.session_key,
                     "conversation": Conversation.objects.create(owner=user, title=f"load {index}").pk})
    return made


async def chat(port: int, user: dict, text: str, started: asyncio.Event, timeout: float) -> dict:
    """One user's turn over a real websocket: send, then collect chunks until the reply is done."""
    from autobahn.asyncio.websocket import WebSocketClientFactory, WebSocketClientProtocol

    frames: asyncio.Queue = asyncio.Queue()

    class Client(WebSocketClientProtocol):
        def onOpen(self):  # noqa: N802 - autobahn's name
            frames.put_nowait({"type": "_open"})

        def onMessage(self, payload, is_binary):  # noqa: N802
            frames.put_nowait(json.loads(payload.decode()))

        def onClose(self, was_clean, code, reason):  # noqa: N802
            frames.put_nowait({"type": "_closed", "code": code})

    url = f"ws://localhost:{port}/ws/chat/{user['conversation']}/"
    factory = WebSocketClientFactory(url, origin=f"http://localhost:{port}",
                                     headers={"Cookie": f"sessionid={user['session']}"})
    factory.protocol = Client
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_connection(factory, "127.0.0.1", port)
    result = {"user": user["user"], "ttft": None, "end": None, "seqs": [], "text": "", "error": None}
    try:
        while (frame := await asyncio.wait_for(frames.get(), timeout)).get("type") != "history":
            if frame["type"] == "_closed":
                raise ConnectionError(f"closed with {frame['code']} before the history")
        await started.wait()  # every user sends at once
        sent = time.perf_counter()
        protocol.sendMessage(json.dumps({"type": "send", "content": text}).encode())
        reply_id = None
        while True:
            frame = await asyncio.wait_for(frames.get(), timeout)
            kind = frame.get("type")
            if kind == "_closed":
                raise ConnectionError(f"closed with {frame['code']} mid-reply")
            if kind == "error":
                raise RuntimeError(frame.get("detail"))
            if kind == "chunk" and (reply_id is None or frame["message"] == reply_id):
                reply_id = frame["message"]
                if result["ttft"] is None and frame.get("text"):
                    result["ttft"] = time.perf_counter() - sent
                result["seqs"].append(frame["seq"])
                result["text"] += frame.get("text") or ""
                if frame.get("done"):
                    result["end"] = time.perf_counter() - sent
                    break
            elif kind == "status" and frame.get("message") == reply_id and frame.get("status") in ("failed",
                                                                                                  "interrupted"):
                raise RuntimeError(f"reply {frame['status']}: {frame.get('detail')}")
        result["reply"] = reply_id
    except Exception as exc:  # noqa: BLE001 - a user's failure is a figure, not the end of the bench
        result["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        protocol.sendClose()
        transport.close()
    return result


def run_clients(users: list[dict], port: int, timeout: float) -> list[dict]:
    """Every user's turn at once, each over its own socket; the results in user order."""
    async def everyone():
        started = asyncio.Event()
        tasks = [asyncio.create_task(chat(port, user, MESSAGES[i % len(MESSAGES)], started, timeout))
                 for i, user in enumerate(users)]
        await asyncio.sleep(2)  # every socket open and its history read
        started.set()
        return await asyncio.gather(*tasks)

    return asyncio.run(everyone())


def queue_checks(count: int, batch: int = 50):
    """`count` sandbox checks on the verify queue, in batches as the self-play pipeline sends them."""
    from webapp.core.tasks import verify_batch

    jobs = [{"id": f"c{i}", "kind": "tests", "code": f"def f(x):\n    return x * {i}",  # all distinct: no cache hit
             "tests": [f"assert f(3) == {3 * i}"]} for i in range(count)]
    return [verify_batch.delay(jobs[start:start + batch]) for start in range(0, count, batch)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--tokens", type=int, default=64, help="the longest reply (AUTODIDACT_CHAT_MAX_TOKENS)")
    parser.add_argument("--checks", type=int, default=1000)
    parser.add_argument("--no-generation", action="store_true", help="do not queue a generation run")
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/postgres",
                        help="a PostgreSQL server where a database of the bench's own is created and dropped")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14", help="a Redis index of its own (flushed)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds a user waits for a reply")
    parser.add_argument("--json", default="")
    parser.add_argument("--clients", default="", help=argparse.SUPPRESS)  # the client process: users as JSON
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.clients:
        print(json.dumps(run_clients(json.loads(args.clients), args.port, args.timeout)))
        return 0

    import psycopg
    import redis

    name = f"autodidact_load_{uuid.uuid4().hex[:8]}"
    admin = psycopg.connect(args.database_url, autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(args.database_url)
    database_url = urlunsplit(parts._replace(path=f"/{name}"))
    redis.Redis.from_url(args.redis_url).flushdb()
    data = Path(tempfile.mkdtemp(prefix="load-bench-"))
    env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": args.redis_url, "AUTODIDACT_DATA_DIR": str(data),
           "PYTHONUNBUFFERED": "1", "AUTODIDACT_ADMIN_PASSWORD": PASSWORD, "AUTODIDACT_CHAT_RATE_LIMIT": "",
           "AUTODIDACT_CHAT_MAX_TOKENS": str(args.tokens), "AUTODIDACT_CHAT_MODEL": "", "AUTODIDACT_PRELOAD_MODEL": "1"}
    for key in ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND"):
        env.pop(key, None)
    os.environ.update({k: env[k] for k in ("DATABASE_URL", "REDIS_URL", "AUTODIDACT_DATA_DIR")})
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
    site = SiteProcess(env)
    report: dict = {"users": args.users, "tokens": args.tokens, "checks": args.checks,
                    "generation_run": not args.no_generation}
    try:
        report["start_s"] = round(site.wait_until_up(timeout=300), 1)
        import django

        django.setup()
        from django.contrib.auth.models import User

        from webapp.serving import model_worker

        deadline = time.monotonic() + 300  # the model workers alive with their models loaded (preloaded)
        queues = ["gpu"] + (["chat"] if os.environ.get("AUTODIDACT_CHAT_QUEUE", "chat") == "chat" else [])
        for queue in queues:
            while not (state := model_worker.read_state(queue=queue))["alive"] or (
                    state.get("runtime") or {}).get("status") != "ready":
                assert time.monotonic() < deadline, f"the {queue} worker never got ready: {state}"
                time.sleep(1)
            report["model" if queue == "gpu" else f"{queue}_model"] = (state.get("runtime") or {}).get("model")
        report["chat_queue"] = model_worker.chat_queue()[0]
        users = make_users(args.users)
        with MemoryWatch(site) as memory:
            if not args.no_generation:
                from webapp.puzzles import generation_runs

                run = generation_runs.start_run(User.objects.get(username="admin"), {"batches": 2})
                generation_runs.enqueue(run)
                report["generation_run_id"] = run.pk
            queued_at = time.perf_counter()
            pending = queue_checks(args.checks)

            def wait_checks():
                verdicts = [v for result in pending for v in result.get(timeout=args.timeout)]
                report["checks_s"] = round(time.perf_counter() - queued_at, 1)
                report["checks_per_s"] = round(len(verdicts) / report["checks_s"], 1)
                report["checks_passed"] = sum(v["status"] == "passed" for v in verdicts)

            checker = threading.Thread(target=wait_checks)
            checker.start()

            # The clients run in a process without Django: daphne has set autobahn to Twisted here.
            clients = subprocess.run([sys.executable, __file__, "--clients", json.dumps(users), "--port", str(site.port),
                                      "--timeout", str(args.timeout)], capture_output=True, text=True)
            if clients.returncode != 0:
                raise RuntimeError(f"the websocket clients failed:\n{clients.stderr[-3000:]}")
            results = json.loads(clients.stdout)
            checker.join()
        from webapp.chat.models import Message

        if not args.no_generation:
            from webapp.puzzles.models import GenerationRun

            generation = GenerationRun.objects.get(pk=report["generation_run_id"])
            report["generation_run_at_end"] = f"{generation.status} {generation.stage}".strip()

        lost = repeated = mismatched = 0
        for result in results:
            if result["error"] or result["reply"] is None:
                continue
            seqs = result["seqs"]
            repeated += len(seqs) - len(set(seqs))
            lost += len(set(range(max(seqs) + 1)) - set(seqs)) if seqs else 0
            mismatched += Message.objects.get(pk=result["reply"]).content != result["text"]
        done = [r for r in results if not r["error"]]
        ttft, end = [r["ttft"] for r in done if r["ttft"] is not None], [r["end"] for r in done if r["end"]]
        report.update({
            "replies_done": len(done), "errors": [r["error"] for r in results if r["error"]],
            "ttft_p50_s": round(statistics.median(ttft), 2) if ttft else None,
            "ttft_p95_s": round(percentile(ttft, 0.95), 2) if ttft else None,
            "end_p50_s": round(statistics.median(end), 2) if end else None,
            "end_p95_s": round(percentile(end, 0.95), 2) if end else None,
            "chunks_lost": lost, "chunks_repeated": repeated, "replies_unlike_the_stored_one": mismatched,
            "reply_chars_mean": round(statistics.mean(len(r["text"]) for r in done)) if done else None,
            "peak_rss_mb": {role: round(rss / 2**20) for role, rss in sorted(memory.peaks.items())},
        })
    finally:
        site.interrupt(timeout=60) if site.proc.poll() is None else None
        from django.db import connections

        connections.close_all()
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    print(json.dumps(report, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0 if not report.get("errors") and report.get("chunks_lost") == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
