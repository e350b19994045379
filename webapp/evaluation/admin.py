from django.contrib import admin

from webapp.evaluation.models import BenchmarkRun


@admin.register(BenchmarkRun)
class BenchmarkRunAdmin(admin.ModelAdmin):
    list_display = ("id", "benchmark", "version", "status", "tasks_done", "tasks_total", "created_at")
    list_filter = ("benchmark", "status")
    readonly_fields = ("summary", "model_info", "config")
