from django.apps import AppConfig


class ChatConfig(AppConfig):
    """Conversations with the model: messages streamed token by token, stoppable, resumable."""

    name = "webapp.chat"
    label = "chat"
    verbose_name = "Chat"
