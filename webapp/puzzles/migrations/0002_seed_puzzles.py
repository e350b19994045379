"""A fresh install has puzzles to browse: the project's own seed puzzles, each with its solution
(tests/test_selfplay_seeds.py verifies every one in the sandbox)."""
from django.db import migrations


def add_seeds(apps, schema_editor):
    from webapp.puzzles.catalogue import import_seeds

    import_seeds(apps.get_model("puzzles", "Puzzle"), apps.get_model("puzzles", "Attempt"))


def remove_seeds(apps, schema_editor):
    apps.get_model("puzzles", "Puzzle").objects.filter(source="seed").delete()


class Migration(migrations.Migration):
    dependencies = [("puzzles", "0001_initial")]
    operations = [migrations.RunPython(add_seeds, remove_seeds)]
