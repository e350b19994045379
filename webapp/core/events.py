"""Per-user event groups: how workers and views push live updates to a user's open pages."""
from __future__ import annotations

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer


def user_group(user_id: int) -> str:
    return f"user.{int(user_id)}"


def session_group(session_key: str) -> str:
    """The sockets opened under one browser session (closed together when it ends)."""
    return f"session.{session_key}"


def close_session_sockets(session_key: str | None) -> None:
    if session_key:
        async_to_sync(get_channel_layer().group_send)(session_group(session_key), {"type": "session.ended"})


def notify_user(user_id: int, payload: dict) -> None:
    """Send `payload` to every websocket the user has open (at-most-once, like the layer itself)."""
    async_to_sync(get_channel_layer().group_send)(
        user_group(user_id), {"type": "events.message", "payload": payload}
    )
