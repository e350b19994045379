"""`manage.py selfplay --rounds R`: the self-improvement loop headless (generate → verify →
fine-tune → evaluate → promote), a progress bar per stage, and a report (markdown + JSON).

    python manage.py selfplay --rounds 1 --batches 4 --method full --epochs 2 --samples 10
    python manage.py selfplay --rounds 2 --data own    # the paper's loop: own puzzles only
"""
import sys

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from engine.selfplay.pipeline import SelfPlayConfig
from engine.training.precision import PRECISIONS
from webapp.refusals import Refused
from webapp.training.report import markdown, write
from webapp.training.rounds import PROMOTE_IF, TRAIN_FROM, RoundConfig
from webapp.training.selfplay_loop import run_loop
from webapp.training.training_data import DATA, REHEARSAL


class StageBars:
    """One progress bar per stage. A stage that starts over (the next round's training, or its
    evaluation) gets a fresh bar, so its elapsed time and rate are its own, not the first round's."""

    def __init__(self, file=None):
        self.file = file or sys.stderr  # looked up now, not at import: a caller may have redirected it
        self.bars: dict[str, tqdm] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        bar = self.bars.get(stage)
        if bar is None or (total and bar.total != total) or done < bar.n:
            if bar is not None:
                bar.close()
            bar = self.bars[stage] = tqdm(total=total or None, desc=f"{stage:>11}", file=self.file, leave=True)
        bar.n = done
        bar.refresh()

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


class Command(BaseCommand):
    help = "Run R rounds of self-play generation and training, and write a report of the results."

    def add_arguments(self, parser):
        gen = SelfPlayConfig()
        parser.add_argument("--rounds", type=int, default=1)
        parser.add_argument("--report", default="var/selfplay-report", help="folder for report.md and report.json")
        parser.add_argument("--no-bootstrap", action="store_true",
                            help="skip importing P3 and verifying its train-split reference solutions")
        parser.add_argument("--variants", type=int, default=0,
                            help="with the bootstrap: new instances per P3 train puzzle (new parameter values, "
                                 "the reference solution rewritten to them); those that pass verification are "
                                 "training pairs")
        parser.add_argument("--search-solutions", action="store_true",
                            help="with the bootstrap: a search solution (a copy of the puzzle and a loop over "
                                 "integers) for every integer-answer puzzle that may be trained on; those that "
                                 "pass verification in 1 s are training pairs")
        parser.add_argument("--data", choices=DATA, default="all",
                            help="own: train only on puzzles and solutions this project's models wrote and the "
                                 "sandbox verified (no P3 references, variants, search templates or chat); "
                                 "all: everything verified; the paper's controls: references (P3's reference "
                                 "solutions alone), unverified (as many pairs as all, failed attempts kept)")
        parser.add_argument("--backend", default="auto", help="generation backend (auto: llama.cpp for the GGUF base)")
        group = parser.add_argument_group("self-play generation (0 batches: train on the data already there)")
        for name in ("batches", "puzzles_per_prompt", "attempts", "generation_tokens", "solving_tokens",
                     "context_tokens"):
            group.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(gen, name))
        group.add_argument("--style", default=gen.style)
        group.add_argument("--form", default=gen.form, help="how puzzles are asked for: pair (puzzle, solution "
                           "and assert written together), completion (the paper's) or chat")
        group.add_argument("--writer", default=gen.writer,
                           help="who writes puzzles: self, or teacher (AUTODIDACT_TEACHER_URL, or the packaged "
                                "Qwen2.5-Coder served locally)")
        group = parser.add_argument_group("fine-tuning")
        group.add_argument("--method", choices=["full", "lora"], default="full")
        group.add_argument("--epochs", type=float, default=2.0)
        group.add_argument("--max-steps", type=int, default=0)
        group.add_argument("--learning-rate", type=float, default=5e-5)
        group.add_argument("--train-from", choices=TRAIN_FROM, default=RoundConfig.train_from,
                           help="active: fine-tune the promoted version further; origin: each round starts "
                                "again from the base on all data so far, as the paper's iterations do")
        group.add_argument("--batch-size", type=int, default=8)
        group.add_argument("--block-size", type=int, default=512)
        group.add_argument("--precision", choices=PRECISIONS, default="auto",
                           help="auto: bf16 mixed precision where the hardware multiplies bf16 natively, else fp32")
        group.add_argument("--train-seed", type=int, default=0,
                           help="the order examples are packed and shuffled in, and the trainer's seed: a round "
                                "made again at another seed shows how much of its result is that draw")
        group.add_argument("--validate-every", type=int, default=0,
                           help="greedy answers to MBPP validation tasks (511-600) every N steps, checked in the "
                                "sandbox; training stops when they stop improving and keeps the best model (0: off)")
        group.add_argument("--patience", type=int, default=2, help="validations without improvement before stopping")
        group.add_argument("--interpolation", type=float, default=1.0,
                           help="publish start + α·(trained − start), 0 < α ≤ 1 (WiSE-FT: keeps more of what the "
                                "start could do; 1: the trained model as it is)")
        group.add_argument("--interpolation-fallbacks", default="",
                           help="smaller α to try in order when the gate rejects the published model, e.g. "
                                "0.5,0.25: each is made from the same training, evaluated and gated; the first "
                                "that passes is promoted")
        group.add_argument("--max-example-tokens", type=int, default=256,
                           help="leave out longer examples (0: keep all); a few huge puzzles dominate CPU time")
        group.add_argument("--sources", default="selfplay,chat",
                           help="what the round trains on: selfplay (verified puzzle pairs), chat (verified "
                                "repairs), mbpp (MBPP train tasks rehearsed in the paper's format), mbpp-chat (the same "
                                "tasks in the chat form)")
        group = parser.add_argument_group("evaluation")
        group.add_argument("--samples", type=int, default=10, help="P3 samples per test puzzle (n)")
        group.add_argument("--temperature", type=float, default=0.8)
        group.add_argument("--subset", type=int, default=0, help="P3 validation puzzles, the gate's set (0 = all 34)")
        group.add_argument("--eval-style", default="completion")
        group.add_argument("--code-problems", type=int, default=90,
                           help="the forgetting check: greedy pass@1 on the first N MBPP validation tasks (0: skip)")
        group.add_argument("--no-chat-check", action="store_true",
                           help="run the forgetting check with the 3-shot prompt only, not also with the chat prompt")
        group.add_argument("--humaneval-problems", type=int, default=0,
                           help="also report HumanEval (a test set: never gated on) on the first N problems")
        group.add_argument("--k", type=int, default=10, help="the promotion gate's pass@k")
        group.add_argument("--report-benchmarks", default=RoundConfig.report_benchmarks,
                           help="test benchmarks run on each promoted version and on the start version, for the "
                                "report (comma-separated; \"\" for none); never selected on")
        group.add_argument("--report-limit", type=int, default=0,
                           help="only the first N tasks of each report benchmark (0: all)")
        group.add_argument("--eval-backend", choices=["auto", "llama.cpp", "transformers"], default="auto",
                           help="auto: llama.cpp at f16 on a CPU where installed, else transformers (full precision)")
        group.add_argument("--promote-if", choices=PROMOTE_IF, default=RoundConfig.promote_if,
                           help="better: a version is promoted only on a gain (pass@k, or pass@1 at the same "
                                "pass@k); not-worse: also on a tie or a drop within --margin")
        group.add_argument("--margin", type=float, default=0.0,
                           help="with --promote-if not-worse: allowed pass@k drop, in points")

    def handle(self, *args, **o):
        from django.core.management import call_command

        rehearsed = set(REHEARSAL) & set(o["sources"].split(","))
        if o["data"] == "own" and (o["variants"] or o["search_solutions"] or rehearsed):
            raise CommandError("--data own trains only on what the models wrote: drop --variants, "
                               "--search-solutions and the mbpp sources (or use --data all)")
        if o["data"] == "own" and o["writer"] == "teacher":
            raise CommandError("--data own trains only on what the model itself wrote: a teacher's puzzles "
                               "are not its own (use --data all)")
        call_command("migrate", verbosity=0)  # a fresh data folder works as it is, as with `up`
        generation = {name: o[name] for name in ("batches", "puzzles_per_prompt", "attempts", "generation_tokens",
                                                 "solving_tokens", "context_tokens", "style", "form", "writer")}
        round_config = {
            "sources": [s for s in o["sources"].split(",") if s], "data": o["data"],
            "sft": {"method": o["method"], "epochs": o["epochs"], "max_steps": o["max_steps"],
                    "learning_rate": o["learning_rate"], "batch_size": o["batch_size"], "block_size": o["block_size"],
                    "max_example_tokens": o["max_example_tokens"], "precision": o["precision"],
                    "seed": o["train_seed"], "validate_every": o["validate_every"], "patience": o["patience"],
                    "interpolation": o["interpolation"]},
            "p3_eval": {"samples": o["samples"], "temperature": o["temperature"], "subset": o["subset"],
                        "style": o["eval_style"]},
            "humaneval_problems": o["humaneval_problems"], "code_problems": o["code_problems"],
            "chat_check": not o["no_chat_check"],
            "interpolation_fallbacks": o["interpolation_fallbacks"],
            "report_benchmarks": o["report_benchmarks"], "report_limit": o["report_limit"],
            "metric_k": o["k"], "promote_if": o["promote_if"], "train_from": o["train_from"], "margin": o["margin"] / 100,
            "eval_backend": o["eval_backend"],
        }
        bars = StageBars()
        try:
            report = run_loop(o["rounds"], generation, round_config, not o["no_bootstrap"], o["backend"], bars,
                              o["variants"], o["search_solutions"])
        except (ValueError, Refused) as exc:
            raise CommandError(str(exc)) from exc
        finally:
            bars.close()
        md, js = write(report, o["report"])
        self.stdout.write(markdown(report))
        self.stdout.write(f"report written to {md} and {js}")
