"""Admin for rounds and versions: start a round with a run's settings, promote, roll back."""
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied

from webapp.training import rounds, versions
from webapp.training.models import ModelVersion, TrainingRun


@admin.register(TrainingRun)
class TrainingRunAdmin(admin.ModelAdmin):
    list_display = ("id", "status", "stage", "trigger", "created_by", "examples", "created_at", "finished_at")
    list_filter = ("status", "trigger")
    readonly_fields = ("status", "stage", "dataset", "dataset_hash", "examples", "progress", "loss_curve",
                       "eval_before", "eval_after", "training", "decision", "log", "error", "base_version",
                       "created_at", "started_at", "finished_at", "heartbeat_at")
    actions = ["start_round_like_this", "cancel_rounds"]

    @admin.action(description="Start a new training round with the selected run's settings")
    def start_round_like_this(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one run to copy its settings.", messages.ERROR)
            return
        try:
            run = rounds.start_round(request.user, queryset.get().config, trigger=TrainingRun.Trigger.ADMIN)
        except (PermissionDenied, ValueError, rounds.RoundRefused) as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        self.message_user(request, f"Started training round {run.pk}.", messages.SUCCESS)

    @admin.action(description="Cancel the selected rounds")
    def cancel_rounds(self, request, queryset):
        for run in queryset:
            rounds.cancel_round(request.user, run)
        self.message_user(request, "Cancel requested.", messages.SUCCESS)


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ("name", "status", "is_active", "parent", "created_by_run", "promoted_at")
    list_filter = ("status",)
    readonly_fields = ("is_active", "status", "metrics", "promoted_at", "created_by_run")
    actions = ["promote_version", "roll_back"]

    @admin.action(description="Promote the selected version (serve it now)")
    def promote_version(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one version to promote.", messages.ERROR)
            return
        version = queryset.get()
        try:
            versions.promote(version, f"promoted by {request.user.get_username()} in the admin", request.user)
        except (PermissionDenied, ValueError) as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        self.message_user(request, f"{version.name} is now served.", messages.SUCCESS)

    @admin.action(description="Roll back the active version to its parent")
    def roll_back(self, request, queryset):
        try:
            version = versions.rollback(request.user)
        except (PermissionDenied, ValueError) as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        self.message_user(request, f"{version.name} is served again.", messages.SUCCESS)
