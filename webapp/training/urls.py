from django.urls import path

from webapp.training import views

app_name = "training"
urlpatterns = [
    path("", views.runs, name="runs"),
    path("runs/<int:run_id>/", views.run_page, name="run"),
    path("runs/<int:run_id>/progress/", views.run_progress, name="run-progress"),
    path("runs/<int:run_id>/cancel/", views.cancel, name="run-cancel"),
    path("runs/<int:run_id>/resume/", views.resume, name="run-resume"),
    path("models/", views.models, name="models"),
    path("models/<int:version_id>/promote/", views.promote, name="promote"),
    path("models/rollback/", views.rollback, name="rollback"),
]
