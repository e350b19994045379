"""Chat replies have a queue and a model worker of their own (`chat`), so a person's reply never
waits behind a generation step or a training round on `gpu`; with no chat worker running, replies
still go to the gpu worker. Real Celery workers, Redis, PostgreSQL and the Channels layer."""
import json
import os
import subprocess
import sys
import time

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.core.cache import cache
from django.db import connection
from django.test import Client

from engine.lm.tiny import build_tiny_model
from tests.support import ROOT, embedded_env, start_worker, stop_worker
from webapp.asgi import application
from webapp.celery_app import app as celery_app
from webapp.chat.models import Conversation, Message
from webapp.core.tasks import gpu_echo
from webapp.serving import model_worker

ORIGIN = (b"origin", b"http://localhost")


def queue_of(task_name: str) -> str:
    route = celery_app.amqp.router.route({}, task_name)
    return route["queue"].name


def test_each_task_goes_to_its_queue():
    """Replies a person waits on go to `chat`; long jobs stay on `gpu`; the chat's reaper is bookkeeping."""
    celery_app.loader.import_default_modules()
    names = {name for name in celery_app.tasks if not name.startswith("celery.")}
    streamed = {"chat.reply"}  # every task that streams a reply to a browser (live study dialogs are chats)
    long_jobs = {"gpu.benchmark_run", "gpu.training_round", "gpu.study_run", "gpu.selfplay_step", "gpu.trace_run",
                 "gpu.sample", "gpu.echo"}
    assert streamed | long_jobs <= names
    assert {name for name in names if queue_of(name) == "chat"} == streamed
    assert {name for name in names if queue_of(name) == "gpu"} == long_jobs
    assert queue_of("chat.reap_stale_replies") == queue_of("training.auto_round") == "default"
    assert queue_of("verify.chat_tests") == queue_of("verify.batch") == "verify"


CONFIG_SCRIPT = """
import json, os, django
django.setup()
from webapp.celery_app import app
from webapp.core.embedded import embedded_workers
print(json.dumps({"queue": app.amqp.router.route({}, "chat.reply")["queue"].name,
                  "embedded": [spec.name for spec in embedded_workers()],
                  "threads": os.environ.get("AUTODIDACT_MODEL_THREADS")}))
"""


@pytest.mark.parametrize("value, queue, embedded", [("", "chat", ["verify", "gpu", "chat"]),
                                                    ("gpu", "gpu", ["verify", "gpu"])])
def test_the_chat_queue_is_set_by_the_environment(tmp_path, value, queue, embedded):
    env = {**embedded_env(tmp_path), "DJANGO_SETTINGS_MODULE": "webapp.settings", "AUTODIDACT_CHAT_QUEUE": value}
    run = subprocess.run([sys.executable, "-c", CONFIG_SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    # a process that runs no model worker (a command-line evaluation) keeps every core
    assert json.loads(run.stdout.strip().splitlines()[-1]) == {"queue": queue, "embedded": embedded, "threads": None}


def test_a_wrong_chat_queue_stops_the_start_naming_the_variable(tmp_path):
    env = {**embedded_env(tmp_path), "DJANGO_SETTINGS_MODULE": "webapp.settings", "AUTODIDACT_CHAT_QUEUE": "fast"}
    run = subprocess.run([sys.executable, "-c", "import django; django.setup()"], cwd=ROOT, capture_output=True,
                         text=True, timeout=60, env=env)
    assert run.returncode != 0 and "AUTODIDACT_CHAT_QUEUE='fast' is not one of: chat, gpu" in run.stderr


EMBEDDED_SCRIPT = """
import json, os, time, django
django.setup()
from webapp.core.embedded import EmbeddedWorkers
from webapp.core.tasks import gpu_echo
from webapp.serving.model_runtime import for_queue
workers = EmbeddedWorkers(with_beat=False)
workers.start()
try:
    held = gpu_echo.delay({"long": True}, hold_s=4)
    time.sleep(0.5)
    started = time.monotonic()
    chat = gpu_echo.apply_async(({"chat": True},), queue="chat").get(timeout=30)
    out = {"chat": chat, "chat_s": time.monotonic() - started, "held_done_then": held.ready(),
           "held": held.get(timeout=30), "own_runtime": for_queue("chat") is not for_queue("gpu"),
           "threads": os.environ.get("AUTODIDACT_MODEL_THREADS")}
finally:
    workers.stop()
print(json.dumps({**out, "threads_after": os.environ.get("AUTODIDACT_MODEL_THREADS")}))
"""


def test_embedded_mode_answers_the_chat_queue_beside_a_busy_gpu_worker(tmp_path):
    """The in-process chat worker is a thread of its own with a model runtime of its own."""
    run = subprocess.run([sys.executable, "-c", EMBEDDED_SCRIPT], cwd=ROOT, capture_output=True, text=True,
                         timeout=120, env={**embedded_env(tmp_path), "DJANGO_SETTINGS_MODULE": "webapp.settings"})
    assert run.returncode == 0, run.stderr[-2000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["chat"]["queue"] == "chat" and out["chat"]["thread"] == "celery-chat"
    assert out["held"]["thread"] == "celery-gpu" and not out["held_done_then"] and out["chat_s"] < 3
    assert out["own_runtime"]
    # the two models share the cores while both workers run (one spinning on all cores starves the other)
    assert out["threads"] == str(max(1, (os.cpu_count() or 2) // 2)) and out["threads_after"] is None


@pytest.fixture
def heartbeats(redis_url):
    """The model workers' heartbeat keys, put back as they were."""
    saved = {key: cache.get(key) for key in model_worker.STATE_KEYS.values()}
    yield
    for key, value in saved.items():
        cache.set(key, value) if value else cache.delete(key)


def test_replies_go_to_the_gpu_worker_where_no_chat_worker_serves(heartbeats, settings):
    now = time.time()
    gpu = {"hostname": "gpu@h", "state": "idle", "ts": now, "runtime": {"status": "ready"}}
    cache.set(model_worker.STATE_KEYS["gpu"], gpu)
    cache.delete(model_worker.STATE_KEYS["chat"])
    assert model_worker.chat_queue()[0] == "gpu"  # none started
    cache.set(model_worker.STATE_KEYS["chat"], {**gpu, "hostname": "chat@h", "ts": now - 60})
    assert model_worker.chat_queue()[0] == "gpu"  # gone silent
    cache.set(model_worker.STATE_KEYS["chat"], {**gpu, "hostname": "chat@h", "runtime": {"status": "failed"}})
    assert model_worker.chat_queue()[0] == "gpu"  # its model would not load
    cache.set(model_worker.STATE_KEYS["chat"], {**gpu, "hostname": "chat@h"})
    assert model_worker.chat_queue()[0] == "chat"
    settings.AUTODIDACT_CHAT_QUEUE = "gpu"
    assert model_worker.chat_queue()[0] == "gpu"  # asked for


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return str(build_tiny_model(tmp_path_factory.mktemp("chat-queue-tiny")))


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)
    return value


def one_reply(conversation, cookie: bytes, text: str, timeout: float = 90) -> tuple[int, float, list[dict]]:
    """Send `text` over the conversation's websocket; the reply's id, seconds to its end, its events."""
    async def scenario():
        comm = WebsocketCommunicator(application, f"/ws/chat/{conversation.pk}/", headers=[ORIGIN, (b"cookie", cookie)])
        assert (await comm.connect(5))[0]
        assert (await comm.receive_json_from(timeout=10))["type"] == "history"
        sent = time.monotonic()
        await comm.send_json_to({"type": "send", "content": text})
        reply_id, events = None, []
        while not (events and (events[-1].get("done") or events[-1].get("status") in ("failed", "interrupted"))):
            event = await comm.receive_json_from(timeout=timeout)
            if event["type"] == "message" and event["message"]["role"] == "assistant":
                reply_id = event["message"]["id"]
            elif reply_id is not None and event.get("message") == reply_id:
                events.append(event)
        took = time.monotonic() - sent
        await comm.disconnect()
        return reply_id, took, events

    return async_to_sync(scenario)()


@pytest.mark.django_db(transaction=True)
def test_a_reply_streams_on_the_chat_worker_while_the_gpu_worker_is_busy(tiny_dir, heartbeats, client):
    """websocket -> Celery (Redis) -> the chat worker -> channel layer, while a long task holds the gpu
    worker; then, with the chat worker stopped, the next reply waits for the gpu worker and arrives."""
    db = connection.settings_dict  # the workers must use pytest's test database, not the configured one
    if connection.vendor != "postgresql":
        pytest.fail("this test needs PostgreSQL (run it with `make test`)")
    env = {"AUTODIDACT_MODEL": tiny_dir, "AUTODIDACT_PRELOAD_MODEL": "1", "AUTODIDACT_CHAT_MAX_TOKENS": "24",
           "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"}
    cache.delete(model_worker.STATE_KEYS["chat"])
    gpu, gpu_output = start_worker("gpu-busy", "gpu", "solo", env)
    chat, chat_output = start_worker("chat", "chat", "solo", env)
    user = User.objects.create_user("ada", password="x")
    conversation = Conversation.objects.create(owner=user)
    login = Client()
    login.force_login(user)
    cookie = f"sessionid={login.cookies['sessionid'].value}".encode()
    try:
        for queue in ("gpu", "chat"):
            wait_for(lambda q=queue: (model_worker.read_state(queue=q).get("runtime") or {}).get("status") == "ready",
                     60, f"the {queue} worker's model")
        held = gpu_echo.delay({"long": True}, hold_s=15)  # a generation step's stand-in
        wait_for(lambda: held.state == "STARTED", 20, "the long task to start")
        wait_for(lambda: model_worker.read_state().get("state") == "busy", 10, "the gpu worker's busy heartbeat")
        health = client.get("/healthz").json()
        assert health["checks"]["chat_worker"]["ok"] and "idle" in health["checks"]["chat_worker"]["detail"]
        assert health["warnings"] == [] or all("chat" not in w for w in health["warnings"])

        reply_id, took, events = one_reply(conversation, cookie, "Write hello world in Python.")
        assert not held.ready(), "the long task ended before the reply: nothing was shown"
        assert took < 10, f"the reply took {took:.1f} s behind a busy gpu worker"
        print(f"a chat reply while the gpu worker is busy: {took:.1f} s from send to its end")
        chunks = [e for e in events if e["type"] == "chunk"]
        assert chunks and chunks[-1]["done"] and [c["seq"] for c in chunks] == list(range(len(chunks)))
        saved = Message.objects.get(pk=reply_id)
        assert saved.status == "complete" and saved.content == "".join(c["text"] for c in chunks)
        chat_output.wait_for(r"chat\.reply\[", 5)
        assert "chat.reply[" not in gpu_output.text()

        stop_worker(chat)  # a deployment without a chat worker: the reply waits for the gpu worker
        assert model_worker.chat_queue()[0] == "gpu"
        health = client.get("/healthz").json()
        assert health["checks"]["chat_worker"]["ok"] and any("no chat worker" in w for w in health["warnings"])
        reply_id, took, events = one_reply(conversation, cookie, "And in C?")
        assert held.ready() and Message.objects.get(pk=reply_id).status == "complete"
        gpu_output.wait_for(r"chat\.reply\[", 5)
    except BaseException:
        print(gpu_output.text()[-4000:], chat_output.text()[-4000:])
        raise
    finally:
        stop_worker(chat)
        stop_worker(gpu)
