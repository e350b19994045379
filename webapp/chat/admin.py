"""Conversations in the admin (read-mostly: staff look, users chat)."""
from django.contrib import admin

from webapp.chat.models import Conversation, Message


class MessageInline(admin.TabularInline):
    model = Message
    fields = ("role", "status", "content", "model_name", "finish_reason", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ("__str__", "owner", "updated_at")
    search_fields = ("title", "owner__username", "messages__content")
    inlines = [MessageInline]


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ("id", "conversation", "role", "status", "model_name", "created_at")
    list_filter = ("role", "status")
    search_fields = ("content",)
    readonly_fields = ("heartbeat_at", "chunks", "created_at")
