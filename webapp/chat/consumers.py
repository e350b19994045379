"""The chat websocket: send a message, watch the reply stream, stop it, resume after a reconnect."""
from __future__ import annotations

from channels.db import database_sync_to_async

from webapp.chat import model_replies, user_turns
from webapp.chat.models import Conversation, Message
from webapp.chat.threads import thread
from webapp.core.consumers import CLOSE_UNAUTHENTICATED, JsonFramesConsumer
from webapp.refusals import Refused

CLOSE_NOT_FOUND = 4404


class ChatConsumer(JsonFramesConsumer):
    max_frame_bytes = 128 * 1024  # a message may be 20,000 characters

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.refuse(CLOSE_UNAUTHENTICATED)
            return
        conversation_id = self.scope["url_route"]["kwargs"]["conversation_id"]
        self.conversation = await database_sync_to_async(
            lambda: Conversation.objects.filter(pk=conversation_id, owner=user).first())()
        if self.conversation is None:
            await self.refuse(CLOSE_NOT_FOUND)
            return
        self.group = model_replies.group_name(self.conversation.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.follow_session()
        await self.accept()
        await database_sync_to_async(model_replies.reap_stale_replies)()
        await self.send_json({"type": "history", "messages": await self._messages()})

    async def disconnect(self, code):
        if getattr(self, "group", None):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content, **kwargs):
        kind = content.get("type") if isinstance(content, dict) else None
        if kind == "send":
            await self._send_message(content.get("content"))
        elif kind == "stop":
            await database_sync_to_async(self._stop)(content.get("message"))
        elif kind == "resume":  # after a reconnect: the whole message as persisted, then live chunks
            message = await database_sync_to_async(self._own_message)(content.get("message"))
            if message is not None:
                await self.send_json({"type": "message", "message": message.as_event()})
        else:
            await self.send_json({"type": "error", "detail": "unknown message type"})

    async def _send_message(self, text):
        if not isinstance(text, str):
            await self.send_json({"type": "error", "detail": "send {\"type\": \"send\", \"content\": text}"})
            return
        try:
            await database_sync_to_async(user_turns.send)(self.conversation, text)
        except Refused as exc:
            await self.send_json({"type": "error", "detail": str(exc)})

    def _own_message(self, message_id):
        if not isinstance(message_id, int):
            return None
        return Message.objects.filter(pk=message_id, conversation=self.conversation).first()

    def _stop(self, message_id):
        if self._own_message(message_id) is not None:
            model_replies.request_stop(message_id)

    @database_sync_to_async
    def _messages(self):
        """The branch on screen (a fresh read: the leaf may have moved)."""
        self.conversation.refresh_from_db()
        return [m.as_event() for m in thread(self.conversation)]

    async def chat_event(self, event):
        payload = {k: v for k, v in event.items() if k != "type"}
        await self.send_json({"type": payload.pop("kind"), **payload})
