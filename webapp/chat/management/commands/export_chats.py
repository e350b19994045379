"""`python manage.py export_chats [--output FILE] [--user NAME] [--feedback-only]`: conversations as JSONL."""
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from webapp.chat.export import exportable, iter_jsonl
from webapp.core.jsonl_output import write_lines


class Command(BaseCommand):
    help = "Export chat conversations (messages, feedback, code, verdicts, ratings) as JSON lines."

    def add_arguments(self, parser):
        parser.add_argument("--output", "-o", default="-", help="file to write (default: standard output)")
        parser.add_argument("--user", help="only this user's conversations")
        parser.add_argument("--feedback-only", action="store_true", help="only conversations with a feedback turn")

    def handle(self, *args, output, user, feedback_only, **options):
        owner = None
        if user:
            owner = get_user_model().objects.filter(username=user).first()
            if owner is None:
                raise CommandError(f"no user named {user!r}")
        count = write_lines(iter_jsonl(exportable(owner, feedback_only).iterator(chunk_size=200)), output, self.stdout)
        self.stderr.write(f"exported {count} conversation(s)" + ("" if output == "-" else f" to {output}"))
