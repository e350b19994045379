"""Faults injected again and again, every process real (server mode): what survived.

The fault tests (tests/test_celery.py, tests/test_chat_streaming.py, tests/test_database_restart.py,
tests/test_disk_full.py, ...) each inject one fault once, at one moment. Where a process dies in
its work decides what there is to lose, so this repeats the two kills that depend on that moment,
each at several points, and prints what survived:

- a verify worker killed (-9) mid-batch, after 0.2 … 2.2 s of a 6-job batch whose jobs take 1.5 s
  each: batches answered by the next worker, verdicts right, lost and repeated;
- the chat model worker killed (-9) mid-reply, after 1, 3, … chunks of a long answer: chunks
  stored before the kill, whether the stored reply kept every one of them, whether it was marked
  interrupted (what the user sees), and whether the user's next message is answered by a fresh worker.

It works in a PostgreSQL database and a Redis index of its own (created here, dropped after).

    python benchmarks/fault_injection.py [--repeats 5] [--database-url postgres://…/postgres]
        [--redis-url redis://127.0.0.1:6379/15]
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support import batch_after_a_kill, slow_jobs, start_worker, stop_worker  # noqa: E402

BATCH = 6
LONG_ANSWER = ("Explain in detail, step by step, how Python classes, inheritance and decorators work, "
               "with a code example for each.")


def wait_until(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (found := check()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {timeout:.0f} s")
        time.sleep(0.05)
    return found


def verify_kill(delay_s: float) -> dict:
    """One batch of 6 slow jobs, its worker killed `delay_s` after the batch started."""
    jobs = slow_jobs(BATCH)
    verdicts = batch_after_a_kill(jobs, delay_s)
    ids = [v["id"] for v in verdicts]
    right = sum(v["status"] == ("passed" if int(v["id"][3:]) % 2 else "failed") for v in verdicts)
    return {"delay_s": delay_s, "verdicts": len(verdicts), "right": right,
            "lost": len({j["id"] for j in jobs} - set(ids)), "repeated": len(ids) - len(set(ids))}


def chat_worker(name: str, env: dict):
    """A chat worker, once it has published that it serves (so replies are routed to it)."""
    from webapp.serving.model_worker import read_state, serves

    started = time.time()
    worker, output = start_worker(name, "chat", "solo", env)
    wait_until(lambda: serves(state := read_state(queue="chat")) and state.get("ts", 0) >= started, 300,
               f"{name} did not serve")
    return worker, output


def reply_kill(chunks: int, env: dict, owner) -> dict:
    """A reply streamed by a real chat worker, killed once `chunks` chunks are stored; then reaped as
    the page would, and the user's next message answered by a fresh worker."""
    from webapp.chat import model_replies, user_turns
    from webapp.chat.models import Conversation, Message

    conversation = Conversation.objects.create(owner=owner, title=f"fault {chunks}")
    worker, output = chat_worker("chat-doomed", env)
    _, reply = user_turns.send(conversation, LONG_ANSWER)
    try:
        streamed = wait_until(lambda: (m := Message.objects.get(pk=reply.pk)).chunks >= chunks
                              or m.status != "streaming" and m, 300, "the reply did not stream")
        if streamed is not True and streamed.status != "streaming":
            raise RuntimeError(f"the reply ended before the kill: {streamed.status} {streamed.finish_reason}; "
                               f"the worker said:\n{output.text()[-3000:]}")
    finally:
        stop_worker(worker, signal.SIGKILL)
    at_kill = Message.objects.get(pk=reply.pk)
    time.sleep(model_replies.STALE_AFTER_S + 1)
    model_replies.reap_stale_replies()
    after = Message.objects.get(pk=reply.pk)
    worker, _ = chat_worker("chat-fresh", env)
    try:
        _, again = user_turns.send(conversation, "Thanks. And in one line?")
        answered = wait_until(lambda: (m := Message.objects.get(pk=again.pk)).status != "streaming" and m, 300,
                              "the next message was not answered")
    finally:
        stop_worker(worker)
    return {"chunks_before_kill": at_kill.chunks, "status_at_kill": at_kill.status,
            "kept_every_stored_chunk": after.content == at_kill.content and after.chunks == at_kill.chunks,
            "status_after_reap": after.status, "finish_reason": after.finish_reason,
            "next_message": answered.status}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="kill points per fault")
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/postgres",
                        help="a PostgreSQL server where a database of the bench's own is created and dropped")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/15", help="a Redis index of its own (flushed)")
    parser.add_argument("--model", default="", help="the chat worker's model (default: the packaged default)")
    parser.add_argument("--json", default="")
    args = parser.parse_args(argv)

    import psycopg
    import redis

    name = f"autodidact_faults_{uuid.uuid4().hex[:8]}"
    admin = psycopg.connect(args.database_url, autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    database_url = urlunsplit(urlsplit(args.database_url)._replace(path=f"/{name}"))
    redis.Redis.from_url(args.redis_url).flushdb()
    data = tempfile.mkdtemp(prefix="fault-bench-")
    settings_env = {"DATABASE_URL": database_url, "REDIS_URL": args.redis_url, "AUTODIDACT_DATA_DIR": data,
                    "AUTODIDACT_MODEL": args.model, "AUTODIDACT_CHAT_MODEL": "", "AUTODIDACT_CHAT_RATE_LIMIT": "",
                    "AUTODIDACT_CHAT_MAX_TOKENS": "4096", "AUTODIDACT_PRELOAD_MODEL": "1"}
    for key in ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND"):
        os.environ.pop(key, None)
    os.environ.update(settings_env)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
    report: dict = {"repeats": args.repeats}
    try:
        import django

        django.setup()
        from django.contrib.auth.models import User
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        owner = User.objects.create_user("fault-bench")
        report["chat_worker_killed_mid_reply"] = [reply_kill(1 + 2 * i, settings_env, owner)
                                                  for i in range(args.repeats)]
        report["verify_worker_killed_mid_batch"] = [verify_kill(0.2 + 2.0 * i / max(1, args.repeats - 1))
                                                    for i in range(args.repeats)]
    finally:
        from django.db import connections

        connections.close_all()
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        redis.Redis.from_url(args.redis_url).flushdb()
    print("verify worker killed (-9) mid-batch; the batch redelivered to the next worker:")
    print(f"  {'after':>7} {'verdicts':>9} {'right':>6} {'lost':>5} {'repeated':>9}")
    for row in report["verify_worker_killed_mid_batch"]:
        print(f"  {row['delay_s']:>6.1f}s {row['verdicts']:>9} {row['right']:>6} {row['lost']:>5} {row['repeated']:>9}")
    print("chat model worker killed (-9) mid-reply; reaped, then the next message sent:")
    print(f"  {'chunks':>7} {'kept all':>9} {'status':>12} {'next message':>13}")
    for row in report["chat_worker_killed_mid_reply"]:
        print(f"  {row['chunks_before_kill']:>7} {str(row['kept_every_stored_chunk']):>9} {row['status_after_reap']:>12} "
              f"{row['next_message']:>13}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
