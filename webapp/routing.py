"""Websocket routes (each app appends its consumers here)."""
from django.urls import path

from webapp.chat.consumers import ChatConsumer
from webapp.core.consumers import EventsConsumer

websocket_urlpatterns = [
    path("ws/events/", EventsConsumer.as_asgi()),
    path("ws/chat/<int:conversation_id>/", ChatConsumer.as_asgi()),
]
