"""`manage.py export_ledger`: the training-data ledger's rows as JSON lines in the chat format."""
from django.core.management.base import BaseCommand

from webapp.core.jsonl_output import write_lines
from webapp.datasets.export import iter_jsonl


class Command(BaseCommand):
    help = ("Export the training-data ledger (verified chat repairs, as the messages the model was given and its "
            "reply) as JSON lines: the rows a training round trains on. Test-split tasks are left out unless --all.")

    def add_arguments(self, parser):
        parser.add_argument("--output", "-o", help="file to write (default: standard output)")
        parser.add_argument("--all", action="store_true", help="every row, test-split tasks included (flagged)")

    def handle(self, *args, output=None, **options):
        count = write_lines(iter_jsonl(options["all"]), output, self.stdout)
        self.stderr.write(f"exported {count} ledger rows" + (f" to {output}" if output else ""))
