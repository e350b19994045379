"""The events websocket through the real channel layer (Redis under `make test`)."""
import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client

from webapp.asgi import application
from webapp.core.events import notify_user

pytestmark = pytest.mark.django_db(transaction=True)
SAME_ORIGIN = (b"origin", b"http://localhost")


def session_cookie(user) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


def connect(headers):
    return WebsocketCommunicator(application, "/ws/events/", headers=headers)


@pytest.fixture
def user():
    return User.objects.create_user("grace", password="x")


def test_runs_on_the_redis_layer(redis_url):
    assert settings.CHANNEL_LAYERS["default"]["BACKEND"] == "channels_redis.core.RedisChannelLayer"


def test_ping_round_trips_through_the_layer_and_server_pushes_arrive(user):
    cookie = session_cookie(user)

    async def scenario():
        comm = connect([SAME_ORIGIN, (b"cookie", cookie)])
        connected, _ = await comm.connect()
        assert connected
        await comm.send_json_to({"type": "ping", "nonce": "n-1"})
        assert await comm.receive_json_from(timeout=5) == {"type": "pong", "nonce": "n-1"}
        # A worker-side push (sync code, as a Celery task would do) reaches the open socket.
        await sync_to_async(notify_user)(user.pk, {"kind": "round", "step": 3})
        assert await comm.receive_json_from(timeout=5) == {"type": "event", "payload": {"kind": "round", "step": 3}}
        await comm.disconnect()

    async_to_sync(scenario)()


def test_bad_frames_get_an_error_and_the_socket_stays_usable(user):
    cookie = session_cookie(user)

    async def scenario():
        comm = connect([SAME_ORIGIN, (b"cookie", cookie)])
        assert (await comm.connect())[0]
        await comm.send_to(text_data="{not json")
        assert (await comm.receive_json_from(timeout=5))["type"] == "error"
        await comm.send_json_to({"type": "launch-missiles"})
        assert (await comm.receive_json_from(timeout=5))["type"] == "error"
        await comm.send_to(text_data="x" * 20000)
        assert (await comm.receive_json_from(timeout=5))["type"] == "error"
        await comm.send_json_to({"type": "ping", "nonce": "still-here"})
        assert (await comm.receive_json_from(timeout=5))["nonce"] == "still-here"
        await comm.disconnect()

    async_to_sync(scenario)()


def test_foreign_origin_is_refused(user):
    cookie = session_cookie(user)

    async def scenario():
        comm = connect([(b"origin", b"http://evil.example"), (b"cookie", cookie)])
        connected, _ = await comm.connect()
        assert not connected
        await comm.disconnect()  # as a server would: the consumer ends before the loop closes

    async_to_sync(scenario)()


def test_anonymous_socket_is_refused():
    async def scenario():
        comm = connect([SAME_ORIGIN])
        connected, _ = await comm.connect()  # accepted, then closed: the browser sees the code (not 1006)
        assert connected and await comm.receive_output(timeout=5) == {"type": "websocket.close", "code": 4401}
        await comm.disconnect()  # as a server would: the consumer ends before the loop closes

    async_to_sync(scenario)()


def test_other_users_do_not_receive_my_events(user):
    other = User.objects.create_user("mallory", password="x")
    mine, theirs = session_cookie(user), session_cookie(other)

    async def scenario():
        a = connect([SAME_ORIGIN, (b"cookie", mine)])
        b = connect([SAME_ORIGIN, (b"cookie", theirs)])
        assert (await a.connect())[0] and (await b.connect())[0]
        await sync_to_async(notify_user)(user.pk, {"secret": 1})
        assert (await a.receive_json_from(timeout=5))["payload"] == {"secret": 1}
        assert await b.receive_nothing(timeout=0.5)
        await a.disconnect()
        await b.disconnect()

    async_to_sync(scenario)()


def test_embedded_layer_delivers_what_worker_threads_send():
    """In embedded mode Celery workers are threads: their sends must wake a waiting consumer.
    (Channels' own InMemoryChannelLayer fails this: the message sits until something else
    wakes the receiving loop.)"""
    import asyncio
    import threading
    import time

    from webapp.core.layers import ThreadSafeInMemoryChannelLayer

    layer = ThreadSafeInMemoryChannelLayer()

    async def scenario():
        channel = await layer.new_channel()
        receiving = asyncio.ensure_future(layer.receive(channel))
        await asyncio.sleep(0.05)  # the consumer is now waiting
        started = time.monotonic()
        threading.Thread(target=lambda: async_to_sync(layer.send)(channel, {"type": "x", "n": 1})).start()
        message = await asyncio.wait_for(receiving, 2)
        return message, time.monotonic() - started

    message, took = async_to_sync(scenario)()
    assert message == {"type": "x", "n": 1} and took < 0.5
