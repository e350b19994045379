"""Self-play from the command line, without the web app.

    python -m engine.selfplay run --out var/selfplay --batches 4      # resumable: rerun to continue
    python -m engine.selfplay styles --puzzles 20 --attempts 4         # which prompt style solves best
    python -m engine.selfplay search --split test                     # what the search template alone solves
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import sys
import time
from pathlib import Path
from types import SimpleNamespace

from engine.lm.loading import BATCH_WEIGHTS, batch_weights, load_full_precision, load_model
from engine.sandbox import verify_many
from engine.selfplay.generation_prompt import FORMS
from engine.selfplay.p3 import load_p3, one_per_problem
from engine.selfplay.pipeline import BatchStore, SelfPlayConfig, SelfPlayPipeline
from engine.selfplay.search_solutions import search_reach
from engine.selfplay.seeds import SEED_PUZZLES
from engine.selfplay.solving_prompts import STYLES
from engine.selfplay.style_choice import best_style, measure_styles
from engine.selfplay.training_text import training_example


def _train_puzzles(data: str | None) -> list:
    puzzles = [SimpleNamespace(sat=s.sat, sol=s.sol, split="train") for s in SEED_PUZZLES]
    if data:
        puzzles += [p for p in one_per_problem(load_p3(Path(data))) if p.split == "train"]
    return puzzles


def _teacher(where: str, model: str, stack: contextlib.ExitStack):
    """An endpoint model for a URL, or for a GGUF file served by a llama.cpp server for this run."""
    from engine.lm.local_server import LocalServer
    from engine.lm.openai_endpoint import Endpoint, EndpointModel

    if not where.startswith(("http://", "https://")):
        server = stack.enter_context(LocalServer(where))
        where, model = server.url, model or server.gguf.stem
    return EndpointModel(Endpoint(where, model, os.environ.get("AUTODIDACT_TEACHER_KEY", "")))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.selfplay", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["run", "styles", "search"])
    parser.add_argument("--model", default="", help="HF id, local checkpoint or .gguf (default: packaged SmolLM2)")
    parser.add_argument("--backend", default="auto", help="auto, transformers or llama.cpp")
    parser.add_argument("--quantized", action="store_true",
                        help="write and solve with a quantised model as it is (default: its full-precision copy)")
    parser.add_argument("--weights", choices=BATCH_WEIGHTS, default="auto",
                        help="the full-precision copy of a quantised GGUF: auto (bf16 where llama.cpp has bf16 kernels)")
    parser.add_argument("--p3", default=str(Path(__file__).resolve().parents[2].parent / "shared" / "data" / "p3"),
                        help="folder with puzzles.json and split.json ('' = seed puzzles only)")
    parser.add_argument("--out", default="var/selfplay", help="run: where batches are saved (and resumed from)")
    defaults = SelfPlayConfig()
    for name in ("batches", "puzzles_per_prompt", "attempts", "generation_tokens", "solving_tokens",
                 "context_tokens", "seed", "top_k"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(defaults, name))
    for name in ("generation_temperature", "solving_temperature", "top_p"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=float, default=getattr(defaults, name))
    parser.add_argument("--style", choices=STYLES, default=defaults.style)
    parser.add_argument("--form", choices=FORMS, default=defaults.form, help="how puzzles are asked for")
    parser.add_argument("--teacher", default="",
                        help="run: who writes the puzzles, when not the model itself: an OpenAI-compatible base URL "
                             "(its key from AUTODIDACT_TEACHER_KEY) or a .gguf file served by a llama.cpp server "
                             "started for the run")
    parser.add_argument("--teacher-model", default="", help="the model name the teacher endpoint serves")
    parser.add_argument("--puzzles", type=int, default=20, help="styles: training puzzles to measure on")
    parser.add_argument("--split", choices=["train", "validation", "test", "other"], default="train",
                        help="search: the P3 split, one instance per problem as the evaluation takes them")
    args = parser.parse_args(argv)
    if args.command == "search":
        chosen = [(p.name, p.sat) for p in one_per_problem(load_p3(Path(args.p3))) if p.split == args.split]
        print(json.dumps({"split": args.split, **search_reach(chosen, verify_many)}, indent=2))
        return 0

    config = SelfPlayConfig.from_known(vars(args))
    train = _train_puzzles(args.p3)
    model = load_model(args.model, args.backend) if args.quantized else \
        load_full_precision(args.model, args.backend, weights=batch_weights(args.weights))
    print(f"{model.name} loaded in {model.load_seconds:.1f} s", file=sys.stderr)
    verify = lambda jobs: verify_many(jobs)  # noqa: E731
    if args.command == "styles":
        sample = random.Random(args.seed).sample(train, min(args.puzzles, len(train)))
        results = measure_styles(model, sample, verify, config)
        print(json.dumps({"model": model.name, "best": best_style(results), "styles": results}, indent=2))
        return 0
    started = time.perf_counter()

    def progress(event):
        print(f"batch {event['batch'] + 1}/{event['batches']} · {event['stage']} · "
              f"{time.perf_counter() - started:.0f} s", file=sys.stderr)

    with contextlib.ExitStack() as stack:
        writer = _teacher(args.teacher, args.teacher_model, stack) if args.teacher else None
        summary = SelfPlayPipeline(model, train, verify, config, BatchStore(args.out), progress, writer=writer).run()
        if writer is not None:
            print(f"teacher {writer.name}: {writer.retried} requests retried, failures by kind {dict(writer.errors)}",
                  file=sys.stderr)
    pairs_path = Path(args.out) / "pairs.jsonl"
    with open(pairs_path, "w", encoding="utf-8") as out:
        for sat, solution in summary.pairs:
            out.write(json.dumps({"sat": sat, "solution": solution, "text": training_example(sat, solution),
                                  "model": model.name, "config": config.as_dict()}) + "\n")
    print(json.dumps({"model": model.name, "counts": summary.counts, "timings": summary.timings,
                      "batches": summary.batches, "resumed": summary.resumed, "wall_s": round(summary.seconds, 1),
                      "pairs_file": str(pairs_path)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
