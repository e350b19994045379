from django.apps import AppConfig


class DatasetsConfig(AppConfig):
    name = "webapp.datasets"
    label = "datasets"
    verbose_name = "Training data"
    default_auto_field = "django.db.models.BigAutoField"
