"""The events websocket: a signed-in user's live channel (notifications now, progress later)."""
from __future__ import annotations

import json

from channels.generic.websocket import AsyncJsonWebsocketConsumer

from webapp.core.events import user_group

CLOSE_UNAUTHENTICATED = 4401
MAX_FRAME_BYTES = 16 * 1024


class JsonFramesConsumer(AsyncJsonWebsocketConsumer):
    """Base for the site's sockets: a bad frame gets an error reply, never a crashed consumer."""

    max_frame_bytes = MAX_FRAME_BYTES

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
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.group = user_group(user.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)
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
