from django.urls import path

from webapp.training import views

app_name = "training"
urlpatterns = [
    path("", views.runs, name="runs"),
    *views.RUN_PAGES.urlpatterns(),
    path("models/", views.models, name="models"),
    path("models/<int:version_id>/promote/", views.promote, name="promote"),
    path("models/rollback/", views.rollback, name="rollback"),
]
