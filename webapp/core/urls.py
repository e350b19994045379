from django.urls import path

from webapp.core import views

urlpatterns = [
    path("", views.home, name="home"),
    path("status/panel/", views.status_panel, name="status-panel"),
    path("healthz", views.healthz, name="healthz"),
]
