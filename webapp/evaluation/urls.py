from django.urls import path

from webapp.evaluation import views

app_name = "evaluation"
urlpatterns = [
    path("", views.index, name="index"),
    *views.RUN_PAGES.urlpatterns(),
    path("runs/<int:run_id>/tasks/<int:position>/", views.task_detail, name="task"),
    path("runs/<int:run_id>/export.<str:fmt>", views.export, name="export"),
]
