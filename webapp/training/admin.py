"""Admin for rounds: start a round with a run's settings, cancel rounds."""
from django.contrib import admin, messages

from webapp.refusals import Refused
from webapp.training import rounds
from webapp.training.models import TrainingRun


@admin.register(TrainingRun)
class TrainingRunAdmin(admin.ModelAdmin):
    list_display = ("id", "status", "stage", "trigger", "created_by", "examples", "created_at", "finished_at")
    list_filter = ("status", "trigger")
    readonly_fields = ("status", "stage", "dataset", "dataset_hash", "examples", "progress", "loss_curve",
                       "eval_before", "eval_after", "training", "decision", "log", "error", "base_version", "produced_version",
                       "created_at", "started_at", "finished_at", "heartbeat_at")
    actions = ["start_round_like_this", "cancel_rounds"]

    @admin.action(description="Start a new training round with the selected run's settings")
    def start_round_like_this(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one run to copy its settings.", messages.ERROR)
            return
        try:
            run = rounds.start_round(request.user, queryset.get().config, trigger=TrainingRun.Trigger.ADMIN)
        except Refused as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        self.message_user(request, f"Started training round {run.pk}.", messages.SUCCESS)

    @admin.action(description="Cancel the selected rounds")
    def cancel_rounds(self, request, queryset):
        asked = 0
        for run in queryset:
            try:
                rounds.cancel_round(request.user, run)
                asked += 1
            except Refused as exc:  # already finished, or not a trainer
                self.message_user(request, exc.reason, messages.WARNING)
        if asked:
            self.message_user(request, f"Cancel requested for {asked} round(s).", messages.SUCCESS)
