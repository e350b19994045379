from django.urls import path

from webapp.studies import views

app_name = "studies"
urlpatterns = [
    path("", views.index, name="index"),
    *views.RUN_PAGES.urlpatterns(),
    path("runs/<int:run_id>/tasks/<int:task_id>/", views.task_detail, name="task"),
    path("runs/<int:run_id>/take/", views.take, name="take"),
    path("runs/<int:run_id>/export.jsonl", views.export, name="export"),
    path("dialogs/<int:dialog_id>/leave/", views.leave, name="leave"),
]
