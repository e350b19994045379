from django.apps import AppConfig


class PuzzlesConfig(AppConfig):
    name = "webapp.puzzles"
    label = "puzzles"
    verbose_name = "Puzzles"
