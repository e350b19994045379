"""The model's side of a chat turn: a placeholder for its reply, the reply streamed from the model
into the database and the channel layer, stopping it, and noticing when the model worker died
mid-reply. (What a person does to ask for a reply is in user_turns.py.)"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import timedelta

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.core.cache import cache
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from redis.exceptions import RedisError

from engine.lm.generation import CancelToken, LanguageModel, SamplingParams
from engine.lm.stream_chunks import coalesce
from engine.sandbox.verdict import short
from webapp.chat.models import Conversation, Message
from webapp.chat.threads import ancestors, model_history
from webapp.core import shutdown
from webapp.refusals import Conflict
from webapp.serving.versions import attributable

log = logging.getLogger(__name__)
# How an unreachable channel layer or cache (Redis, in server mode) fails a call.
LAYER_DOWN = (OSError, ConnectionError, RedisError)
HEARTBEAT_EVERY_S = 5.0
STALE_AFTER_S = 20.0  # a started reply with no heartbeat for this long: its worker is gone
QUEUED_TOO_LONG_S = 600.0


def reply_params() -> SamplingParams:
    """Greedy, so a reply can be reproduced; the length cap comes from AUTODIDACT_CHAT_MAX_TOKENS."""
    from django.conf import settings

    return SamplingParams(max_new_tokens=settings.AUTODIDACT_CHAT_MAX_TOKENS, temperature=0.0)


class Busy(Conflict):
    """The user already has a reply being generated."""


def group_name(conversation_id: int) -> str:
    return f"chat.{int(conversation_id)}"


def _stop_key(message_id: int) -> str:
    return f"chat:stop:{int(message_id)}"


def broadcast(conversation_id: int, event: dict) -> bool:
    """Tell the conversation's open sockets; False if the channel layer could not be reached.

    Best effort by design: the database holds every chunk, so a Redis restart mid-reply costs the
    live view only (a socket that reconnects resumes from the stored message), never the reply."""
    try:
        async_to_sync(get_channel_layer().group_send)(group_name(conversation_id), {"type": "chat.event", **event})
        return True
    except LAYER_DOWN as exc:
        log.warning("conversation %s: could not broadcast (%s: %s); the reply is still stored",
                    conversation_id, type(exc).__name__, exc)
        return False


def _stop_requested(message_id: int) -> bool:
    try:
        return bool(cache.get(_stop_key(message_id)))
    except LAYER_DOWN:  # the cache is Redis too: unreachable = not asked
        return False


def _reply_turn(parent: Message) -> int:
    """1 for the first answer on a branch, +1 for each answer before it."""
    return 1 + sum(1 for m in ancestors(parent) if m.role == Message.Role.ASSISTANT)


def create_reply(conversation: Conversation, parent: Message, kind: str = Message.Kind.CHAT) -> Message:
    """A placeholder for the model's answer to `parent`, shown as the branch's end. Raises Busy."""
    try:
        with transaction.atomic():
            reply = Message.objects.create(conversation=conversation, owner=conversation.owner, parent=parent,
                                           role=Message.Role.ASSISTANT, kind=kind, turn=_reply_turn(parent),
                                           status=Message.Status.STREAMING)
            Conversation.objects.filter(pk=conversation.pk).update(leaf=reply, updated_at=timezone.now())
    except IntegrityError:
        raise Busy("a reply is still being written; stop it or wait for it") from None
    return reply


def request_stop(message_id: int) -> None:
    cache.set(_stop_key(message_id), True, timeout=3600)


class _Heartbeat:
    """Refresh the reply's heartbeat from a thread, also while the model is still loading."""

    def __init__(self, message_id: int):
        self.message_id = message_id
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="chat-heartbeat", daemon=True)

    def _beat(self):
        try:
            while not self._done.wait(HEARTBEAT_EVERY_S):
                Message.objects.filter(pk=self.message_id).update(heartbeat_at=timezone.now())
        finally:
            connection.close()  # this thread's own connection

    def __enter__(self):
        Message.objects.filter(pk=self.message_id).update(heartbeat_at=timezone.now())
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._done.set()
        self._thread.join(timeout=HEARTBEAT_EVERY_S + 1)


def runtime_for(message_id: int, runtime):
    """The model the reply's conversation picked (loaded on the model worker), or the served one;
    a pick that is the served model (the packaged default, the active version) is not loaded twice."""
    from webapp.serving.chat_models import resolve

    value = Message.objects.filter(pk=message_id).values_list("conversation__chat_model", flat=True).first()
    chosen = resolve(value) if value else None
    if chosen is None or not chosen.value:
        return runtime.get()
    return runtime.serve_choice(chosen.spec, chosen.version_id)


def stream_reply(message_id: int, get_model: Callable[[], tuple[LanguageModel, int | None]],
                 params: SamplingParams | None = None, interval_s: float = 0.1) -> Message:
    """Generate the reply into the placeholder: one database write and one broadcast per chunk."""
    params = params or reply_params()
    reply = Message.objects.select_related("conversation").get(pk=message_id)
    if reply.status != Message.Status.STREAMING:
        return reply  # stopped or reaped before we started
    conversation_id = reply.conversation_id
    history = model_history(reply)
    content = ""
    with _Heartbeat(message_id):
        try:
            model, version_id = get_model()
            Message.objects.filter(pk=message_id).update(model_name=model.name,
                                                          model_version_id=attributable(version_id))
            cancel = CancelToken()
            for chunk in coalesce(model.stream(history, params, cancel), interval_s):
                content += chunk.text
                fields = {"content": content, "chunks": chunk.seq + 1, "heartbeat_at": timezone.now()}
                if chunk.done:
                    fields["status"] = (Message.Status.CANCELLED if chunk.finish_reason == "cancelled"
                                        else Message.Status.COMPLETE)
                    fields["finish_reason"] = chunk.finish_reason or ""
                Message.objects.filter(pk=message_id, status=Message.Status.STREAMING).update(**fields)
                broadcast(conversation_id, {"kind": "chunk", "message": message_id, "seq": chunk.seq,
                                             "text": chunk.text, "done": chunk.done,
                                             "status": fields.get("status", Message.Status.STREAMING),
                                             "finish_reason": chunk.finish_reason})
                if not chunk.done and (shutdown.stopping() or _stop_requested(message_id)):
                    cancel.cancel()
        except Exception as exc:
            log.exception("reply %s failed", message_id)
            Message.objects.filter(pk=message_id, status=Message.Status.STREAMING).update(
                status=Message.Status.FAILED, finish_reason="error")
            broadcast(conversation_id, {"kind": "status", "message": message_id, "status": "failed",
                                         "detail": short(f"the model failed: {type(exc).__name__}: {exc}", 300)})
    try:
        cache.delete(_stop_key(message_id))
    except LAYER_DOWN:
        pass  # it expires on its own
    return Message.objects.get(pk=message_id)


def reap_stale_replies() -> int:
    """Mark replies whose worker went silent as interrupted, and tell their conversations."""
    now = timezone.now()
    stale = Message.objects.filter(status=Message.Status.STREAMING).filter(
        heartbeat_at__lt=now - timedelta(seconds=STALE_AFTER_S)
    ) | Message.objects.filter(status=Message.Status.STREAMING, heartbeat_at__isnull=True,
                               created_at__lt=now - timedelta(seconds=QUEUED_TOO_LONG_S))
    reaped = list(stale.values_list("pk", "conversation_id"))
    for message_id, conversation_id in reaped:
        if Message.objects.filter(pk=message_id, status=Message.Status.STREAMING).update(
                status=Message.Status.INTERRUPTED, finish_reason="worker lost"):
            broadcast(conversation_id, {"kind": "status", "message": message_id, "status": "interrupted",
                                         "detail": "the model worker stopped answering; the reply is incomplete"})
    return len(reaped)
