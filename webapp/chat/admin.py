"""Conversations in the admin (read-mostly: staff look, users chat)."""
from django.contrib import admin

from webapp.chat.models import Conversation, Message


class MessageInline(admin.TabularInline):
    model = Message
    fields = ("role", "kind", "status", "turn", "content", "verdict", "rating", "model_name", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ("__str__", "owner", "kind", "turns", "solved", "first_success_turn", "updated_at")
    list_filter = ("kind", "solved")
    search_fields = ("title", "owner__username", "messages__content")
    inlines = [MessageInline]


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ("id", "conversation", "role", "kind", "status", "turn", "rating", "model_name", "created_at")
    list_filter = ("role", "kind", "status", "rating")
    search_fields = ("content",)
    readonly_fields = ("heartbeat_at", "chunks", "created_at")
