"""The events websocket: a signed-in user's live channel (notifications now, progress later)."""
from __future__ import annotations

import json

from channels.generic.websocket import AsyncJsonWebsocketConsumer

from webapp.core.events import session_group, user_group

CLOSE_UNAUTHENTICATED = 4401
MAX_FRAME_BYTES = 16 * 1024


class JsonFramesConsumer(AsyncJsonWebsocketConsumer):
    """Base for the site's sockets: a bad frame gets an error reply, never a crashed consumer;
    refusals and a session that ends reach the browser as close codes it can act on."""

    max_frame_bytes = MAX_FRAME_BYTES
    session_key: str | None = None

    async def refuse(self, code: int) -> None:
        """Accept, then close with `code`: a close before the handshake is an HTTP 403, which a
        browser reports only as 1006, so the page could never tell "stop retrying" from a blip."""
        await self.accept()
        await self.close(code=code)

    async def follow_session(self) -> None:
        """Close this socket (4401) when its session is signed out, in any tab."""
        session = self.scope.get("session")
        self.session_key = getattr(session, "session_key", None)
        if self.session_key:
            await self.channel_layer.group_add(session_group(self.session_key), self.channel_name)

    async def session_ended(self, event):
        await self.close(code=CLOSE_UNAUTHENTICATED)

    async def websocket_disconnect(self, message):
        if self.session_key:
            await self.channel_layer.group_discard(session_group(self.session_key), self.channel_name)
        await super().websocket_disconnect(message)

    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        if bytes_data is not None or text_data is None or len(text_data) > self.max_frame_bytes:
            await self.send_json({"type": "error",
                                  "detail": f"send JSON text frames under {self.max_frame_bytes // 1024} KiB"})
            return
        try:
            content = json.loads(text_data)
        except ValueError:
            await self.send_json({"type": "error", "detail": "frame is not valid JSON"})
            return
        await self.receive_json(content)


class EventsConsumer(JsonFramesConsumer):
    """Joins the user's group; answers `ping` through the channel layer (a real round trip)."""

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.refuse(CLOSE_UNAUTHENTICATED)
            return
        self.group = user_group(user.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.follow_session()
        await self.accept()

    async def disconnect(self, code):
        if getattr(self, "group", None):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content, **kwargs):
        if not isinstance(content, dict) or content.get("type") != "ping":
            await self.send_json({"type": "error", "detail": "unknown message; expected {\"type\": \"ping\"}"})
            return
        await self.channel_layer.group_send(
            self.group, {"type": "events.pong", "nonce": str(content.get("nonce", ""))[:64]}
        )

    async def events_pong(self, event):
        await self.send_json({"type": "pong", "nonce": event["nonce"]})

    async def events_message(self, event):
        await self.send_json({"type": "event", "payload": event["payload"]})
