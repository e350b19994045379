"""`manage.py import_p3 PATH`: every P3 instance with its split (idempotent: imported names are skipped)."""
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from webapp.puzzles.catalogue import add_search_solutions, import_p3, verify_references


class Command(BaseCommand):
    help = "Import P3 puzzles from a folder with puzzles.json and split.json (default: the benchmark data's p3/)."

    def add_arguments(self, parser):
        parser.add_argument("path", nargs="?", help="folder holding puzzles.json and split.json")
        parser.add_argument("--verify-references", action="store_true",
                            help="run the train-split reference solutions in the sandbox; those that pass "
                                 "become verified training pairs")
        parser.add_argument("--search-solutions", action="store_true",
                            help="write a search solution (a copy of the puzzle and a loop over integers) for "
                                 "every integer-answer puzzle that may be trained on; those that pass in 1 s "
                                 "become verified training pairs")

    def handle(self, *args, path=None, **options):
        folder = path or settings.AUTODIDACT_BENCHMARK_DATA / "p3"
        try:
            result = import_p3(folder)
        except (FileNotFoundError, ValueError, KeyError) as exc:
            raise CommandError(f"cannot import P3 from {folder}: {exc}") from None
        self.stdout.write(f"imported {result['imported']} puzzles, skipped {result['skipped']} already there "
                          f"({result['total']} in {folder})")
        if options["verify_references"]:
            checked = verify_references()
            self.stdout.write(f"reference solutions: {checked['passed']} passed, {checked['failed']} failed "
                              f"of {checked['checked']} checked (test split left alone)")
        if options["search_solutions"]:
            made = add_search_solutions()
            self.stdout.write(f"search solutions: {made['passed']} passed, {made['failed']} failed "
                              f"of {made['written']} written (test split left alone)")
