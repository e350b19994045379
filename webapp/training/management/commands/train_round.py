"""Start a training round from the command line, queued for the workers or run here (--inline).

    python manage.py train_round --inline --method lora --max-steps 200 --samples 10 --subset 50
    python manage.py train_round --settings round.json
"""
import json

from django.core.management.base import BaseCommand, CommandError

from webapp.core.requeue import queued_for_whom
from webapp.refusals import Refused
from webapp.training import rounds
from webapp.training.models import TrainingRun


class Command(BaseCommand):
    help = "Start a training round (fine-tune on verified data, evaluate, promote if better)."

    def add_arguments(self, parser):
        parser.add_argument("--settings", help="a JSON file of RoundConfig settings (others override it)")
        parser.add_argument("--inline", action="store_true", help="run it in this process instead of the workers")
        parser.add_argument("--resume", type=int, help="resume this failed or cancelled round")
        parser.add_argument("--method", choices=["full", "lora"])
        parser.add_argument("--epochs", type=float)
        parser.add_argument("--max-steps", type=int)
        parser.add_argument("--learning-rate", type=float)
        parser.add_argument("--samples", type=int, help="P3 samples per test puzzle")
        parser.add_argument("--subset", type=int, help="P3 test puzzles to evaluate on (0 = all)")
        parser.add_argument("--humaneval-problems", type=int)
        parser.add_argument("--promote-if", choices=rounds.PROMOTE_IF,
                            help="better (default): only on a gain; not-worse: also on a tie or within the margin")
        parser.add_argument("--train-from", choices=rounds.TRAIN_FROM,
                            help="active (default): fine-tune the active version; origin: start from its "
                                 "lineage's first version on all data so far")
        parser.add_argument("--margin", type=float, help="with --promote-if not-worse: allowed pass@k drop, in points")
        parser.add_argument("--no-chat-check", action="store_true",
                            help="run the forgetting check with the 3-shot prompt only, not also with the chat prompt")

    def handle(self, *args, **options):
        settings_ = json.load(open(options["settings"])) if options["settings"] else {}
        sft, p3 = dict(settings_.get("sft", {})), dict(settings_.get("p3_eval", {}))
        for name in ("method", "epochs", "max_steps", "learning_rate"):
            if options[name] is not None:
                sft[name] = options[name]
        for name in ("samples", "subset"):
            if options[name] is not None:
                p3[name] = options[name]
        settings_.update(sft=sft, p3_eval={"samples": 10, **p3})
        if options["humaneval_problems"] is not None:
            settings_["humaneval_problems"] = options["humaneval_problems"]
        if options["margin"] is not None:
            settings_["margin"] = options["margin"] / 100
        for name in ("promote_if", "train_from"):
            if options[name]:
                settings_[name] = options[name]
        if options["no_chat_check"]:
            settings_["chat_check"] = False
        try:
            if options["resume"]:
                run = rounds.resume_round(None, TrainingRun.objects.get(pk=options["resume"]),
                                           enqueue=not options["inline"])
            else:
                run = rounds.start_round(None, settings_, trigger=TrainingRun.Trigger.COMMAND,
                                         enqueue=not options["inline"])
        except (ValueError, Refused, TrainingRun.DoesNotExist) as exc:
            raise CommandError(str(exc)) from exc
        if not options["inline"]:
            self.stdout.write(f"queued training round {run.pk}{queued_for_whom()}")
            return
        run = rounds.run_round(run.pk)
        self.stdout.write(f"round {run.pk}: {run.status}. {run.decision or run.error}")
