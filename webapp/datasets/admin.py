from django.contrib import admin

from webapp.datasets.models import TrainingExample


@admin.register(TrainingExample)
class TrainingExampleAdmin(admin.ModelAdmin):
    list_display = ("id", "provenance", "model_name", "turn", "created_by", "created_at")
    list_filter = ("provenance", "model_name")
    search_fields = ("code", "feedback")
    readonly_fields = ("source_message", "created_at")
