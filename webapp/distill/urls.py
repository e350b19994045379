from django.urls import path

from webapp.distill import views

app_name = "distill"
urlpatterns = [
    path("", views.index, name="index"),
    *views.RUN_PAGES.urlpatterns(),
    path("<int:trace_id>/", views.trace_detail, name="trace"),
    path("<int:trace_id>/review/", views.review, name="review"),
    path("export.jsonl", views.export, name="export"),
]
