from django.contrib import admin

from webapp.studies.models import LiveDialog, Study


@admin.register(Study)
class StudyAdmin(admin.ModelAdmin):
    list_display = ("pk", "title", "status", "chat_model", "tasks_total", "created_at")
    readonly_fields = ("summary", "model_info", "feedback_info")


@admin.register(LiveDialog)
class LiveDialogAdmin(admin.ModelAdmin):
    list_display = ("pk", "study", "task", "participant", "finished", "created_at")
