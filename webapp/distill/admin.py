from django.contrib import admin

from webapp.distill.models import Trace, TraceRun


@admin.register(TraceRun)
class TraceRunAdmin(admin.ModelAdmin):
    list_display = ("pk", "status", "tasks_done", "tasks_total", "created_at")
    readonly_fields = ("summary", "teacher_info")


@admin.register(Trace)
class TraceAdmin(admin.ModelAdmin):
    list_display = ("pk", "run", "source", "sample", "status", "kept", "review")
    list_filter = ("kept", "review", "status")
