"""Admin for model versions: promote one, or roll the active one back to its parent."""
from django.contrib import admin, messages

from webapp.refusals import Refused
from webapp.serving import versions
from webapp.serving.models import ModelVersion


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ("name", "status", "is_active", "parent", "promoted_at")
    list_filter = ("status",)
    readonly_fields = ("is_active", "status", "metrics", "promoted_at")
    actions = ["promote_version", "roll_back"]

    @admin.action(description="Promote the selected version (serve it now)")
    def promote_version(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one version to promote.", messages.ERROR)
            return
        version = queryset.get()
        try:
            versions.promote(version, f"promoted by {request.user.get_username()} in the admin", request.user)
        except Refused as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        self.message_user(request, f"{version.name} is now served.", messages.SUCCESS)

    @admin.action(description="Roll back the active version to its parent")
    def roll_back(self, request, queryset):
        try:
            version = versions.rollback(request.user)
        except Refused as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        self.message_user(request, f"{version.name} is served again.", messages.SUCCESS)
