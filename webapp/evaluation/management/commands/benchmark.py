"""`python manage.py benchmark NAME [--model-version ID | --packaged NAME] [--n N] [--k K …]`: run one benchmark on a model
version in this process (or queue it with --queue), store it like a run started from the page, and
print the summary. `--list` shows the benchmarks."""
from __future__ import annotations

import json
import sys

from django.core.management.base import BaseCommand, CommandError

from engine.evaluate.suite.registry import benchmark_class, names
from webapp.core.requeue import queued_for_whom


class Command(BaseCommand):
    help = __doc__.splitlines()[0]

    def add_arguments(self, parser):
        parser.add_argument("benchmark", nargs="?", help=f"one of: {', '.join(names())}")
        parser.add_argument("--list", action="store_true", help="list the benchmarks and stop")
        parser.add_argument("--model-version", type=int, help="model version id (default: the active one; Django keeps --version)")
        parser.add_argument("--packaged", default="", help="a packaged model instead of a version "
                            "(e.g. qwen2.5-coder-0.5b-instruct), evaluated to compare the versions against")
        parser.add_argument("--prompt", default="")
        parser.add_argument("--n", type=int, default=0, help="samples per task (default: the benchmark's)")
        parser.add_argument("--k", type=int, nargs="+", default=[1, 10, 100], help="pass@k to report")
        parser.add_argument("--temperature", type=float, default=-1.0)
        parser.add_argument("--top-k", type=int, default=-1)
        parser.add_argument("--top-p", type=float, default=0.0)
        parser.add_argument("--max-tokens", type=int, default=0)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--limit", type=int, default=0, help="only the first N tasks")
        parser.add_argument("--queue", action="store_true", help="queue it for the gpu worker instead")

    def handle(self, *args, **o):
        from django.core.management import call_command

        from webapp.evaluation import benchmark_runs
        from webapp.refusals import Refused
        from webapp.serving.models import ModelVersion

        if o["list"] or not o["benchmark"]:
            for name in names():
                cls = benchmark_class(name)
                self.stdout.write(f"{name:18} {cls.title} ({cls.split}; prompts: {', '.join(cls.prompts)})")
            return
        call_command("migrate", verbosity=0)
        version = None
        if o["model_version"] is not None:
            version = ModelVersion.objects.filter(pk=o["model_version"]).first()
            if version is None:
                raise CommandError(f"no model version {o['model_version']}")
        settings_ = {"prompt": o["prompt"], "n": o["n"], "ks": o["k"], "temperature": o["temperature"],
                     "top_k": o["top_k"], "top_p": o["top_p"], "max_tokens": o["max_tokens"], "seed": o["seed"],
                     "limit": o["limit"]}
        try:
            run = benchmark_runs.start_run(None, o["benchmark"], version, settings_, enqueue=o["queue"],
                                           packaged=o["packaged"])
        except Refused as exc:
            raise CommandError(exc.reason) from None
        if o["queue"]:
            self.stdout.write(f"queued benchmark run {run.pk}{queued_for_whom()}")
            return
        print(f"benchmark run {run.pk}: {run.benchmark} on {run.model_label}, {run.tasks_total} tasks", file=sys.stderr)
        run = benchmark_runs.execute(run.pk)
        if run.status == run.Status.FAILED:
            raise CommandError(f"benchmark run {run.pk} failed: {run.error}")
        self.stdout.write(json.dumps({"run": run.pk, "status": run.status, "model": run.model_info,
                                      "settings": run.config, **run.summary}))
