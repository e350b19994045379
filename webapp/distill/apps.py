from django.apps import AppConfig


class DistillConfig(AppConfig):
    name = "webapp.distill"
    label = "distill"
    verbose_name = "Teacher traces"
