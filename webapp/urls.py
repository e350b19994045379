"""Top-level URLs."""
from django.contrib import admin
from django.contrib.auth.decorators import login_not_required
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

# Browsers ask for /favicon.ico whatever the page's <link rel="icon"> says.
favicon = login_not_required(RedirectView.as_view(url=static("img/logo.svg"), permanent=True))

urlpatterns = [
    path("favicon.ico", favicon),
    path("", include("webapp.core.urls")),
    path("accounts/", include("webapp.accounts.urls")),
    path("chat/", include("webapp.chat.urls")),
    path("puzzles/", include("webapp.puzzles.urls")),
    path("training/", include("webapp.training.urls")),
    path("benchmarks/", include("webapp.evaluation.urls")),
    path("studies/", include("webapp.studies.urls")),
    path("traces/", include("webapp.distill.urls")),
    path("admin/", admin.site.urls),
]
