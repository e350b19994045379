"""`manage.py import_replies run.json`: a model's own passing chat-form answers to MBPP train tasks
into the training-data ledger, where rounds with the `chat` source rehearse them."""
import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from webapp.datasets.own_replies import import_replies


class Command(BaseCommand):
    help = ("Keep a model's own passing answers to MBPP train tasks (a run of "
            "`python -m engine.evaluate run mbpp-train --prompt instruct --out run.json`) as training examples "
            "in the chat format. Running it again adds nothing twice.")

    def add_arguments(self, parser):
        parser.add_argument("run", type=Path, help="the run's --out file")
        parser.add_argument("--per-task", type=int, default=2, help="distinct passing answers kept per task")
        parser.add_argument("--max-reply-tokens", type=int, default=0, help="leave out longer answers (0: keep all)")

    def handle(self, *args, run: Path, per_task: int, max_reply_tokens: int, **options):
        try:
            result = json.loads(run.read_text(encoding="utf-8"))
            added, kept = import_replies(result, per_task=per_task, max_reply_tokens=max_reply_tokens)
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise CommandError(f"{run}: {error}") from error
        self.stdout.write(f"{kept} passing answers kept from {run}; {added} new in the ledger")
