from django.contrib import admin

from webapp.puzzles.models import Attempt, GenerationRun, Puzzle, Review, ReviewGuidelines


@admin.register(Puzzle)
class PuzzleAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "source", "split", "status", "difficulty", "review_state", "version", "is_current")
    list_filter = ("source", "split", "status", "review_state", "is_current")
    search_fields = ("name", "sat")
    raw_id_fields = ("previous", "generation_run", "created_by")


@admin.register(Attempt)
class AttemptAdmin(admin.ModelAdmin):
    list_display = ("id", "puzzle", "origin", "status", "kept", "model_name", "style", "created_at")
    list_filter = ("origin", "status", "kept", "style")
    raw_id_fields = ("puzzle", "generation_run", "user")


@admin.register(Review)
class ReviewAdmin(admin.ModelAdmin):
    list_display = ("id", "puzzle", "attempt", "user", "verdict", "created_at")
    list_filter = ("verdict",)
    raw_id_fields = ("puzzle", "attempt")


@admin.register(GenerationRun)
class GenerationRunAdmin(admin.ModelAdmin):
    list_display = ("id", "status", "model_name", "batches_done", "created_by", "created_at", "finished_at")
    list_filter = ("status",)
    readonly_fields = ("counts", "timings")


@admin.register(ReviewGuidelines)
class ReviewGuidelinesAdmin(admin.ModelAdmin):
    list_display = ("id", "updated_by", "updated_at")
