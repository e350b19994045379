from django.contrib import admin

from webapp.datasets.models import TrainingExample


@admin.register(TrainingExample)
class TrainingExampleAdmin(admin.ModelAdmin):
    """The ledger: the same rows `manage.py export_ledger --all` writes; `trainable` says which a round uses."""

    list_display = ("id", "provenance", "task_source", "trainable", "model_name", "turn", "created_by", "created_at")
    list_filter = ("provenance", "model_name")
    search_fields = ("code", "feedback", "task_source")
    readonly_fields = ("source_message", "task_source", "prompt", "completion", "created_at")

    @admin.display(boolean=True, description="trainable")
    def trainable(self, row: TrainingExample) -> bool:
        return row.trainable
