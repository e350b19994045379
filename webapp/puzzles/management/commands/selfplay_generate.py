"""`manage.py selfplay_generate`: a self-play generation run, headless, through the same steps as
the Celery tasks (run here, in this process), with a progress line per step and a summary."""
import json
import time

from django.core.management.base import BaseCommand, CommandError

from engine.lm.loading import load_model
from engine.lm.throughput import tokens_per_s
from engine.selfplay.pipeline import SelfPlayConfig
from engine.selfplay.solving_prompts import STYLES
from webapp.puzzles.generation_runs import resume_run, run_inline, start_run
from webapp.puzzles.models import GenerationRun
from webapp.refusals import Refused
from webapp.serving.model_store import load_batch_version


class Command(BaseCommand):
    help = "Generate, filter, solve and verify puzzles with a model, saving each batch to the database."

    def add_arguments(self, parser):
        defaults = SelfPlayConfig()
        parser.add_argument("--model", default=None, help="HF id, local checkpoint or .gguf (default: the configured model)")
        parser.add_argument("--backend", default="auto",
                            help="auto (llama.cpp for GGUF on a CPU), transformers (batched; GPUs) or llama.cpp")
        parser.add_argument("--quantized", action="store_true",
                            help="write and solve with a quantised model as it is (default: its full-precision copy)")
        parser.add_argument("--batches", type=int, default=defaults.batches, help="the budget: generation prompts")
        parser.add_argument("--puzzles-per-prompt", type=int, default=defaults.puzzles_per_prompt)
        parser.add_argument("--attempts", type=int, default=defaults.attempts)
        parser.add_argument("--generation-temperature", type=float, default=defaults.generation_temperature)
        parser.add_argument("--solving-temperature", type=float, default=defaults.solving_temperature)
        parser.add_argument("--generation-tokens", type=int, default=defaults.generation_tokens)
        parser.add_argument("--solving-tokens", type=int, default=defaults.solving_tokens)
        parser.add_argument("--context-tokens", type=int, default=defaults.context_tokens)
        parser.add_argument("--style", choices=STYLES, default=defaults.style)
        parser.add_argument("--seed", type=int, default=defaults.seed)
        parser.add_argument("--resume", type=int, metavar="RUN_ID", help="carry on a failed or interrupted run")
        parser.add_argument("--json", action="store_true", help="print the summary as JSON")

    def handle(self, *args, **o):
        from django.conf import settings

        started = time.perf_counter()
        try:
            if o["resume"]:
                run = resume_run(None, GenerationRun.objects.get(pk=o["resume"]))
            else:
                run = start_run(None, SelfPlayConfig.from_known(o).as_dict())
        except (ValueError, Refused, GenerationRun.DoesNotExist) as exc:
            raise CommandError(str(exc)) from None
        spec = o["model"] if o["model"] is not None else settings.AUTODIDACT_MODEL
        model = load_model(spec, o["backend"]) if o["quantized"] else load_batch_version(spec, o["backend"])
        self.stderr.write(f"run {run.pk}: model {model.name} loaded in {model.load_seconds:.1f} s")

        def progress(current):
            counts = current.counts
            self.stderr.write(f"run {current.pk} · batch {min(current.batches_done + 1, current.batches)}/"
                              f"{current.batches} · {current.stage or current.status} · generated "
                              f"{counts.get('generated', 0)}, accepted {counts.get('accepted', 0)}, solved "
                              f"{counts.get('solved', 0)}, pairs {counts.get('pairs_kept', 0)} · "
                              f"{time.perf_counter() - started:.0f} s")

        run = run_inline(run, lambda: model, progress)
        summary = {"run": run.pk, "status": run.status, "model": model.name, "config": run.config,
                   "counts": run.counts, "wall_s": round(time.perf_counter() - started, 1),
                   "stages": {stage: {**t, "tokens_per_s": tokens_per_s(t["tokens"], t["seconds"])}
                              for stage, t in run.timings.items()}, "error": run.error}
        self.stdout.write(json.dumps(summary, indent=2) if o["json"] else _table(summary))
        if run.status != GenerationRun.Status.SUCCEEDED:
            raise CommandError(f"run {run.pk} ended {run.status}: {run.error}")


def _table(summary: dict) -> str:
    lines = [f"run {summary['run']} {summary['status']} in {summary['wall_s']} s ({summary['model']})", "",
             "| count | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in summary["counts"].items()]
    lines += ["", "| stage | seconds | tokens | tokens/s | items |", "|---|---|---|---|---|"]
    lines += [f"| {s} | {t['seconds']:.1f} | {t['tokens']} | {t['tokens_per_s']} | {t['items']} |"
              for s, t in summary["stages"].items()]
    return "\n".join(lines)
