"""`manage.py export_dataset --format jsonl`: verified pairs that may be trained on, one per line."""
from django.core.management.base import BaseCommand, CommandError

from webapp.core.jsonl_output import write_lines
from webapp.puzzles.export import iter_jsonl
from webapp.puzzles.models import Puzzle


class Command(BaseCommand):
    help = ("Export verified puzzle/solution pairs as JSON lines (HF `datasets` reads them with "
            "load_dataset('json', data_files=...)). Test-split, rejected and flagged puzzles are never exported.")

    def add_arguments(self, parser):
        parser.add_argument("--format", default="jsonl", choices=["jsonl"])
        parser.add_argument("--output", "-o", help="file to write (default: standard output)")
        parser.add_argument("--source", action="append", choices=Puzzle.Source.values,
                            help="only these sources (repeatable; default: all)")

    def handle(self, *args, output=None, source=None, **options):
        held_out = {Puzzle.Source.P3_TEST, Puzzle.Source.P3_VALIDATION} & set(source or ())
        if held_out:
            raise CommandError(f"{', '.join(sorted(held_out))}: the P3 test and validation splits are for evaluation "
                               "only and are never exported as training data")
        count = write_lines(iter_jsonl(source), output, self.stdout)
        self.stderr.write(f"exported {count} verified pairs" + (f" to {output}" if output else ""))
