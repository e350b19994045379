"""Replies stream through the real channel layer (Redis under `make test`), are persisted as they
stream, can be stopped and resumed, and are marked interrupted when the model worker dies."""
import asyncio
import os
import threading
import time
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from engine.lm.generation import SamplingParams
from engine.lm.tiny import build_tiny_model
from engine.lm.transformers_backend import TransformersModel
from webapp.asgi import application
from webapp.chat import model_replies, user_turns
from webapp.chat.models import Conversation, Message

pytestmark = pytest.mark.django_db(transaction=True)
ORIGIN = (b"origin", b"http://localhost")


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return str(build_tiny_model(tmp_path_factory.mktemp("chat-tiny")))


@pytest.fixture(scope="module")
def tiny(tiny_dir):
    return TransformersModel.load(tiny_dir)


@pytest.fixture
def conversation():
    user = User.objects.create_user("ada", password="x")
    return Conversation.objects.create(owner=user)


def session_cookie(user) -> bytes:
    """Made in sync code, before any async scenario (the test client's login is sync)."""
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


def socket_for(conversation, cookie: bytes):
    return WebsocketCommunicator(application, f"/ws/chat/{conversation.pk}/", headers=[ORIGIN, (b"cookie", cookie)])


async def opened(conversation, cookie, timeout: float = 1):
    """A connected chat socket and the history it sent first."""
    comm = socket_for(conversation, cookie)
    connected, _ = await comm.connect(timeout)
    assert connected
    return comm, await comm.receive_json_from(timeout=10)


def streaming_thread(*args) -> threading.Thread:
    """stream_reply on its own thread, as on a worker; the thread closes its connection after."""
    from django.db import connection

    def run():
        try:
            model_replies.stream_reply(*args)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


async def collect_until_done(comm, message_id, timeout=30.0):
    events, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        event = await comm.receive_json_from(timeout=timeout)
        if event.get("message") == message_id or (isinstance(event.get("message"), dict)
                                                  and event["message"].get("id") == message_id):
            events.append(event)
            if event.get("done") or event.get("status") in ("failed", "interrupted"):
                return events
    raise AssertionError(f"no end of stream; got {events}")


def resumed_view(events: list[dict]) -> str:
    """What a reconnected socket shows after "resume": the stored message, then the chunks after it."""
    resumed = next(e for e in events if e["type"] == "message")["message"]
    return resumed["content"] + "".join(e["text"] for e in events if e["type"] == "chunk" and e["seq"] >= resumed["chunks"])


def test_one_reply_at_a_time_per_user(conversation):
    _, reply = user_turns.start_turn(conversation, "first question")
    assert reply.status == "streaming"
    with pytest.raises(model_replies.Busy):
        user_turns.start_turn(conversation, "second question")
    other = Conversation.objects.create(owner=conversation.owner)
    with pytest.raises(model_replies.Busy):  # per user, across conversations (a database constraint)
        user_turns.start_turn(other, "third")
    with pytest.raises(ValueError):
        user_turns.start_turn(other, "   ")
    assert Conversation.objects.get(pk=conversation.pk).title == "first question"


def test_reply_streams_in_order_and_is_persisted(conversation, tiny):
    _, reply = user_turns.start_turn(conversation, "Write a function.")
    params = SamplingParams(max_new_tokens=40, temperature=1.0, seed=3)

    cookie = session_cookie(conversation.owner)

    async def scenario():
        comm, history = await opened(conversation, cookie)
        assert history["type"] == "history" and [m["role"] for m in history["messages"]] == ["user", "assistant"]
        worker = streaming_thread(reply.pk, lambda: (tiny, None), params, 0.02)
        events = await collect_until_done(comm, reply.pk)
        worker.join()
        await comm.disconnect()
        return events

    events = async_to_sync(scenario)()
    chunks = [e for e in events if e["type"] == "chunk"]
    assert [c["seq"] for c in chunks] == list(range(len(chunks))) and len(chunks) >= 2
    saved = Message.objects.get(pk=reply.pk)
    assert saved.status == "complete" and saved.content == "".join(c["text"] for c in chunks)
    assert saved.chunks == len(chunks) and saved.model_name and saved.finish_reason == "length"
    assert saved.content == tiny.complete([{"role": "user", "content": "Write a function."}], params).text


def test_a_process_that_stops_ends_its_reply_at_the_next_token(conversation, tiny):
    """`up`'s Ctrl-C (and a worker's warm shutdown) must not wait for a long reply to finish."""
    from webapp.core import shutdown

    _, reply = user_turns.start_turn(conversation, "Talk for a long time.")
    worker = streaming_thread(reply.pk, lambda: (tiny, None), SamplingParams(max_new_tokens=5000), 0.02)
    deadline = time.monotonic() + 60
    while not Message.objects.get(pk=reply.pk).content and time.monotonic() < deadline:
        time.sleep(0.05)
    stopped_at = time.monotonic()
    shutdown.begin()
    try:
        worker.join(timeout=30)
        took = time.monotonic() - stopped_at
    finally:
        shutdown.reset()
    saved = Message.objects.get(pk=reply.pk)
    assert not worker.is_alive() and took < 2.0
    assert saved.status == "cancelled" and saved.content and len(saved.content) < 5000


def test_stop_keeps_what_was_generated(conversation, tiny):
    _, reply = user_turns.start_turn(conversation, "Talk for a long time.")

    cookie = session_cookie(conversation.owner)

    async def scenario():
        comm, _ = await opened(conversation, cookie)
        worker = streaming_thread(reply.pk, lambda: (tiny, None), SamplingParams(max_new_tokens=5000), 0.02)
        first = await comm.receive_json_from(timeout=30)
        assert first["type"] == "chunk"
        stopped_at = time.monotonic()
        await comm.send_json_to({"type": "stop", "message": reply.pk})
        events = await collect_until_done(comm, reply.pk)
        took = time.monotonic() - stopped_at
        worker.join()
        await comm.disconnect()
        return events, took

    events, took = async_to_sync(scenario)()
    assert took < 1.0
    assert events[-1]["status"] == "cancelled" and events[-1]["finish_reason"] == "cancelled"
    saved = Message.objects.get(pk=reply.pk)
    assert saved.status == "cancelled" and len(saved.content) > 0 and saved.chunks >= 1


def test_reconnect_mid_stream_resumes_the_whole_message(conversation, tiny):
    _, reply = user_turns.start_turn(conversation, "Go on.")
    params = SamplingParams(max_new_tokens=300, temperature=1.0, seed=1)

    cookie = session_cookie(conversation.owner)

    async def scenario():
        first, _ = await opened(conversation, cookie)
        worker = streaming_thread(reply.pk, lambda: (tiny, None), params, 0.02)
        seen = [await first.receive_json_from(timeout=30) for _ in range(2)]
        await first.disconnect()  # the browser goes away mid-stream
        second, history = await opened(conversation, cookie)
        partial = next(m for m in history["messages"] if m["id"] == reply.pk)
        await second.send_json_to({"type": "resume", "message": reply.pk})
        events = await collect_until_done(second, reply.pk)
        worker.join()
        await second.disconnect()
        return seen, partial, events

    seen, partial, events = async_to_sync(scenario)()
    saved = Message.objects.get(pk=reply.pk)
    assert saved.status == "complete"
    assert saved.content.startswith("".join(e["text"] for e in seen))
    assert saved.content.startswith(partial["content"])  # what the reconnect got was a prefix, never a gap
    assert saved.content == resumed_view(events)


def test_a_dead_worker_gives_interrupted_not_an_endless_spinner(conversation):
    _, reply = user_turns.start_turn(conversation, "Hello?")
    Message.objects.filter(pk=reply.pk).update(content="partial", chunks=1,
                                               heartbeat_at=timezone.now() - timedelta(seconds=60))

    cookie = session_cookie(conversation.owner)

    async def scenario():
        comm = socket_for(conversation, cookie)
        assert (await comm.connect())[0]  # connecting reaps stale replies first
        event = await comm.receive_json_from(timeout=10)
        if event["type"] == "status":
            status_event, event = event, await comm.receive_json_from(timeout=10)
        else:
            status_event = None
        await comm.disconnect()
        return status_event, event

    status_event, history = async_to_sync(scenario)()
    saved = Message.objects.get(pk=reply.pk)
    assert saved.status == "interrupted" and saved.content == "partial"
    assert next(m for m in history["messages"] if m["id"] == reply.pk)["status"] == "interrupted"
    assert status_event is None or "stopped answering" in status_event["detail"]


def test_a_model_worker_killed_mid_reply_leaves_what_it_streamed_marked_interrupted(conversation, tiny_dir,
                                                                                    monkeypatch):
    """kill -9 of a real worker process while it streams (the test above backdates a heartbeat
    instead): every chunk the browser saw was stored before it was sent, and the reply, with no
    worker left to end it, is marked interrupted once its heartbeat is stale."""
    import signal

    from tests.support import start_worker, stop_worker

    worker, output = start_worker("gpu-chat-kill", "gpu", "solo", {
        "AUTODIDACT_MODEL": tiny_dir, "DATABASE_URL": _test_database_url(), "AUTODIDACT_PRELOAD_MODEL": "1",
        "AUTODIDACT_CHAT_MAX_TOKENS": "3500"})  # a reply that cannot end before the kill
    cookie = session_cookie(conversation.owner)

    async def until_streaming():
        comm, _ = await opened(conversation, cookie)
        await comm.send_json_to({"type": "send", "content": "Write hello world in Python."})
        await comm.receive_json_from(timeout=10)  # the user's message
        reply_id = (await comm.receive_json_from(timeout=10))["message"]["id"]
        seen = []
        while len(seen) < 3:
            event = await comm.receive_json_from(timeout=60)
            if event["type"] == "chunk" and event.get("message") == reply_id:
                seen.append(event)
        await comm.disconnect()
        return reply_id, seen

    try:
        reply_id, seen = async_to_sync(until_streaming)()
    except BaseException:
        print(output.text()[-6000:])
        raise
    finally:
        stop_worker(worker, signal.SIGKILL)
    assert not any(event["done"] for event in seen)
    left = Message.objects.get(pk=reply_id)
    assert left.status == "streaming" and left.content.startswith("".join(event["text"] for event in seen))
    monkeypatch.setattr(model_replies, "STALE_AFTER_S", 1.0)
    time.sleep(1.5)  # the last chunk wrote the last heartbeat

    async def reopened():
        comm = socket_for(conversation, cookie)
        assert (await comm.connect())[0]  # connecting reaps stale replies first
        history = None
        while history is None:
            event = await comm.receive_json_from(timeout=10)
            history = event if event["type"] == "history" else None
        await comm.disconnect()
        return history

    history = async_to_sync(reopened)()
    saved = Message.objects.get(pk=reply_id)
    assert saved.status == "interrupted" and saved.finish_reason == "worker lost"
    assert saved.content == left.content and saved.chunks >= len(seen)
    assert next(m for m in history["messages"] if m["id"] == reply_id)["status"] == "interrupted"


def _test_database_url() -> str:
    """The worker must use pytest's test database, not the configured one."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.fail("this test needs PostgreSQL (run it with `make test`)")
    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def test_other_users_cannot_open_or_stop_a_conversation(conversation):
    stranger = Conversation.objects.create(owner=User.objects.create_user("mallory", password="x"))

    cookie = session_cookie(stranger.owner)

    async def scenario():
        comm = socket_for(conversation, cookie)
        connected, _ = await comm.connect()  # accepted, then closed: the browser sees the code (not 1006)
        assert connected and await comm.receive_output(timeout=5) == {"type": "websocket.close", "code": 4404}
        await comm.disconnect()  # as a server would: the consumer ends before the loop closes

    async_to_sync(scenario)()


def test_send_through_a_real_model_worker_streams_a_reply(conversation, tiny_dir, redis_url):
    """The whole path: websocket -> database -> Celery (Redis) -> gpu worker -> channel layer."""
    from tests.support import start_worker, stop_worker

    worker, output = start_worker("gpu-chat", "gpu", "solo", {"AUTODIDACT_MODEL": tiny_dir,
                                                               "DATABASE_URL": _test_database_url(),
                                                               "AUTODIDACT_PRELOAD_MODEL": "1"})
    try:
        cookie = session_cookie(conversation.owner)

        async def scenario():
            comm, _ = await opened(conversation, cookie)
            await comm.send_json_to({"type": "send", "content": "Write hello world in Python."})
            user_event = await comm.receive_json_from(timeout=10)
            reply_event = await comm.receive_json_from(timeout=10)
            assert user_event["message"]["role"] == "user" and reply_event["message"]["status"] == "streaming"
            assert (await comm.receive_json_from(timeout=10))["type"] == "thread"  # the branch's new end
            await comm.send_json_to({"type": "send", "content": "and again"})
            reply_id, busy, events = reply_event["message"]["id"], None, []
            while not (events and events[-1].get("done")):
                event = await comm.receive_json_from(timeout=60)
                if event["type"] == "error":
                    busy = event
                elif event.get("message") == reply_id:
                    events.append(event)
            await comm.disconnect()
            return busy, reply_id, events

        busy, reply_id, events = async_to_sync(scenario)()
    except BaseException:
        print(output.text()[-6000:])  # the worker's side, for the failure report
        raise
    finally:
        stop_worker(worker)
    assert busy["type"] == "error" and "still being written" in busy["detail"]
    saved = Message.objects.get(pk=reply_id)
    assert saved.status == "complete" and saved.content == "".join(e["text"] for e in events if e["type"] == "chunk")
    assert saved.model_name == os.path.basename(tiny_dir)  # a local checkpoint is named after its folder


def test_bad_frames_get_an_error_and_the_socket_stays_usable(conversation):
    cookie = session_cookie(conversation.owner)

    async def scenario():
        comm, _ = await opened(conversation, cookie)
        replies = []
        for frame in ("{not json", "x" * 200_000, '{"type": "launch"}', '{"type": "send", "content": 5}',
                      '{"type": "send", "content": "   "}'):
            await comm.send_to(text_data=frame)
            replies.append(await comm.receive_json_from(timeout=5))
        await comm.send_json_to({"type": "resume", "message": -1})  # not ours: ignored, no crash
        assert await comm.receive_nothing(timeout=0.3)
        await comm.disconnect()
        return replies

    replies = async_to_sync(scenario)()
    assert [r["type"] for r in replies] == ["error"] * 5
    assert "empty" in replies[-1]["detail"]
    assert not Message.objects.filter(conversation=conversation).exists()


def test_an_idle_socket_still_hears_its_conversation(conversation):
    """A consumer waiting longer than the layer's 5 s blocking read (a model still loading) keeps
    receiving: the Redis client's read timeout must not cut the blocking read short."""
    cookie = session_cookie(conversation.owner)

    async def scenario():
        comm, _ = await opened(conversation, cookie)
        await asyncio.sleep(7)
        await get_channel_layer().group_send(model_replies.group_name(conversation.pk), {
            "type": "chat.event", "kind": "status", "message": 0, "status": "failed", "detail": "still here?"})
        event = await comm.receive_json_from(timeout=5)
        await comm.disconnect()
        return event

    assert async_to_sync(scenario)()["detail"] == "still here?"


@pytest.fixture
def own_redis(tmp_path):
    """A Redis server of the test's own, on a free port, that the test can kill and start again
    without disturbing the suite's."""
    import subprocess

    import redis

    from tests.support import free_port

    port = free_port()

    class Server:
        url = f"redis://127.0.0.1:{port}/0"
        process = None

        def start(self):
            self.process = subprocess.Popen(["redis-server", "--port", str(port), "--save", "", "--appendonly", "no",
                                             "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)
            deadline = time.monotonic() + 10
            while True:
                try:
                    redis.Redis.from_url(self.url).ping()
                    return
                except redis.ConnectionError:
                    assert time.monotonic() < deadline, "redis-server did not start"
                    time.sleep(0.05)

        def kill(self):
            self.process.kill()
            self.process.wait()

    server = Server()
    server.start()
    yield server
    server.kill()


class Throttled:
    """The tiny model at a chat model's pace (~50 tokens/s), so an outage lands mid-reply."""

    def __init__(self, model, pause_s: float = 0.02):
        self.model, self.pause_s, self.name = model, pause_s, model.name

    def stream(self, *args, **kwargs):
        for chunk in self.model.stream(*args, **kwargs):
            time.sleep(self.pause_s)
            yield chunk


def test_a_redis_restart_mid_stream_loses_no_chunk(conversation, tiny, own_redis, settings, caplog):
    """Redis (the channel layer and the cache) dies two chunks into a reply and comes back: the model
    worker keeps writing the reply to the database, and a socket that reconnects gets it whole:
    what it is sent is the stored message, then the chunks after it, with no gap and no repeat."""
    from webapp.configuration import redis_layer_host

    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer",
                                           "CONFIG": {"hosts": [redis_layer_host(own_redis.url)]}}}
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": own_redis.url}}
    _, reply = user_turns.start_turn(conversation, "Go on.")
    params = SamplingParams(max_new_tokens=400, temperature=1.0, seed=1)
    cookie = session_cookie(conversation.owner)

    async def scenario():
        first, _ = await opened(conversation, cookie)
        worker = streaming_thread(reply.pk, lambda: (Throttled(tiny), None), params, 0.02)
        seen = [await first.receive_json_from(timeout=30) for _ in range(2)]
        own_redis.kill()  # mid-stream: the layer's groups and the cache are gone with it
        await asyncio.sleep(7)  # longer than the layer's retries (~5 s): some chunks cannot be sent
        own_redis.start()
        try:
            await first.disconnect()
        except Exception:  # noqa: BLE001 - the dead connection may surface here: the browser is gone anyway
            pass
        second, history = await opened(conversation, cookie, timeout=10)
        stored = next(m for m in history["messages"] if m["id"] == reply.pk)
        events = []
        if stored["status"] == "streaming":
            await second.send_json_to({"type": "resume", "message": reply.pk})
            events = await collect_until_done(second, reply.pk)
        worker.join()
        await second.disconnect()
        return seen, stored, events

    seen, stored, events = async_to_sync(scenario)()
    saved = Message.objects.get(pk=reply.pk)
    assert any("could not broadcast" in r.getMessage() for r in caplog.records), "Redis was never missed"
    assert saved.status == "complete"
    assert saved.content == tiny.complete([{"role": "user", "content": "Go on."}], params).text  # nothing lost
    assert saved.content.startswith("".join(e["text"] for e in seen))
    if events:
        assert saved.content == resumed_view(events)
    else:  # it finished while the socket was away: the history had it whole
        assert stored["content"] == saved.content and stored["status"] == "complete"
