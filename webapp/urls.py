"""Top-level URLs."""
from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("", include("webapp.core.urls")),
    path("accounts/", include("webapp.accounts.urls")),
    path("chat/", include("webapp.chat.urls")),
    path("puzzles/", include("webapp.puzzles.urls")),
    path("training/", include("webapp.training.urls")),
    path("benchmarks/", include("webapp.evaluation.urls")),
    path("admin/", admin.site.urls),
]
