"""Puzzle writing on this machine: the acceptance funnel per prompt form, and the rate.

For each prompt form (engine/selfplay/generation_prompt.py: the paper's completion prompt, puzzle
and solution written together, a chat turn with examples) the self-play pipeline writes
`--puzzles` puzzles, `--per-prompt` per prompt (the paper: 64), filters them, and tries each
survivor `--attempts` times; the sandbox verifies every solution. Printed per form: how many
failed each filter (parse failures split by cause: cut at the token limit, indentation, prose,
other syntax), how many were accepted and solved, the pairs kept, tokens/s of the generate and
solve stages, and puzzles written, accepted and verified pairs per hour.

The baseline, measured in the same run on the same model and prompt: the path before batching
(`sample_sequential`: one sample after another, the prompt prefilled for each), for one prompt
of `--baseline` samples; the ratio is the batched generate stage's tokens/s over it.

    python benchmarks/puzzle_funnel.py --puzzles 512 --json docs/figures/puzzle_funnel.json
    python benchmarks/puzzle_funnel.py --teacher qwen2.5-coder-0.5b-instruct --forms pair   # a teacher writes
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.lm.loading import BATCH_WEIGHTS, batch_weights, load_full_precision, load_model  # noqa: E402
from engine.lm.throughput import tokens_per_s  # noqa: E402
from engine.sandbox import verify_many  # noqa: E402
from engine.selfplay.__main__ import _teacher, _train_puzzles  # noqa: E402
from engine.selfplay.generation_prompt import FORMS, generation_prompt  # noqa: E402
from engine.selfplay.pipeline import BatchStore, SelfPlayConfig, SelfPlayPipeline  # noqa: E402


def funnel(records: list[dict]) -> dict:
    """Rejections by filter (and by cause for parse failures) and what the written solutions did."""
    causes = Counter()
    written = Counter()
    for record in records:
        for rejected in record["rejected"]:
            key = rejected["rejected_by"] + (f":{rejected['cause']}" if rejected.get("cause") else "")
            causes[key] += 1
        for puzzle in record["puzzles"]:
            for attempt in puzzle["attempts"]:
                if attempt.get("by") == "writer":
                    written[attempt.get("status", "?")] += 1
    return {"rejected": dict(sorted(causes.items())), "written_solutions": dict(written)}


def run_form(model, train, form: str, args, writer=None) -> dict:
    config = SelfPlayConfig(form=form, batches=max(1, args.puzzles // args.per_prompt),
                            puzzles_per_prompt=args.per_prompt, attempts=args.attempts,
                            generation_tokens=args.tokens,
                            seed=args.seed, max_batch_rows=args.per_prompt)
    with tempfile.TemporaryDirectory() as folder:
        store = BatchStore(folder)
        started = time.perf_counter()
        summary = SelfPlayPipeline(model, train, lambda jobs: verify_many(jobs), config, store,
                                   lambda event: print(f"  {form} batch {event['batch'] + 1}/{event['batches']} "
                                                       f"{event['stage']}", file=sys.stderr), writer=writer).run()
        wall = time.perf_counter() - started
        records = list(store.completed().values())
    hours = wall / 3600
    counts = summary.counts
    return {"form": form, "writer": (writer or model).name, "config": config.as_dict(), "counts": counts, "funnel": funnel(records),
            "timings": summary.timings, "wall_s": round(wall, 1),
            "per_hour": {"written": round(counts["generated"] / hours), "accepted": round(counts["accepted"] / hours),
                         "solved": round(counts["solved"] / hours), "pairs_kept": round(counts["pairs_kept"] / hours)}}


def baseline(model, train, args) -> dict:
    """The unbatched path on one prompt of the completion form."""
    config = SelfPlayConfig(puzzles_per_prompt=args.baseline, generation_tokens=args.tokens, seed=args.seed,
                            form="completion")
    prompt = generation_prompt(train, lambda text: len(model.encode(text)), config.context_tokens,
                               config.generation_tokens)
    params = config.generation_params(0)
    started = time.perf_counter()
    completions = model.sample_sequential(prompt.text, args.baseline, params)
    seconds = time.perf_counter() - started
    tokens = sum(c.tokens for c in completions)
    started = time.perf_counter()
    batched = model.sample(prompt.text, args.baseline, replace(params))
    batched_seconds = time.perf_counter() - started
    batched_tokens = sum(c.tokens for c in batched)
    return {"samples": args.baseline, "prompt_tokens": len(model.encode(prompt.text)),
            "sequential": {"seconds": round(seconds, 1), "tokens": tokens,
                           "tokens_per_s": round(tokens_per_s(tokens, seconds), 1),
                           "puzzles_per_hour": round(args.baseline / seconds * 3600)},
            "batched": {"seconds": round(batched_seconds, 1), "tokens": batched_tokens,
                        "tokens_per_s": round(tokens_per_s(batched_tokens, batched_seconds), 1),
                        "puzzles_per_hour": round(args.baseline / batched_seconds * 3600)}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="", help="default: the packaged SmolLM2-135M-Instruct")
    parser.add_argument("--backend", default="llama.cpp")
    parser.add_argument("--quantized", action="store_true",
                        help="the model's weights as given (the packaged Q4_1), not the full-precision copy the pipeline uses")
    parser.add_argument("--weights", choices=BATCH_WEIGHTS, default="auto",
                        help="the full-precision copy of a quantised GGUF: auto (bf16 where llama.cpp has bf16 kernels)")
    parser.add_argument("--p3", default=str(ROOT.parent / "shared" / "data" / "p3"))
    parser.add_argument("--forms", default=",".join(FORMS))
    parser.add_argument("--puzzles", type=int, default=512, help="written per form")
    parser.add_argument("--per-prompt", type=int, default=64)
    parser.add_argument("--attempts", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=200,
                        help="generation budget per puzzle (the pair form adds the solving budget, 150)")
    parser.add_argument("--baseline", type=int, default=16, help="samples of the sequential baseline (0: skip)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--teacher", default="", help="who writes the puzzles while the model solves them: an "
                        "OpenAI-compatible URL, or a model spec (a .gguf file, a packaged name) loaded here on the "
                        "batched llama.cpp backend")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    model = load_model(args.model, args.backend) if args.quantized else \
        load_full_precision(args.model, args.backend, weights=batch_weights(args.weights))
    train = _train_puzzles(args.p3)
    result = {"model": model.name, "backend": getattr(model, "backend", args.backend),
              "weights": getattr(model, "quantization", ""), "forms": []}
    if args.baseline:
        result["baseline"] = base = baseline(model, train, args)
        print(f"baseline, {base['samples']} samples of one {base['prompt_tokens']}-token prompt: sequential "
              f"{base['sequential']['tokens_per_s']} tok/s, batched {base['batched']['tokens_per_s']} tok/s "
              f"({base['batched']['tokens_per_s'] / max(base['sequential']['tokens_per_s'], 1e-9):.1f}x)")
    stack = contextlib.ExitStack()
    writer = None
    if args.teacher.startswith(("http://", "https://")):
        writer = _teacher(args.teacher, "", stack)
    elif args.teacher:
        writer = load_model(args.teacher, "llama.cpp")
    for form in args.forms.split(","):
        row = run_form(model, train, form, args, writer)
        result["forms"].append(row)
        c, t = row["counts"], row["timings"]
        print(f"{form}: {c['generated']} written, {c['accepted']} accepted, {c['solved']} solved, "
              f"{c['pairs_kept']} pairs kept in {row['wall_s']} s; generate {t['generate']['tokens_per_s']} tok/s, "
              f"solve {t['solve']['tokens_per_s']} tok/s; per hour {row['per_hour']}")
        print(f"  rejected: {row['funnel']['rejected']}; written solutions: {row['funnel']['written_solutions']}")
    if writer is not None:
        result["teacher"] = {"name": writer.name, "retried": getattr(writer, "retried", 0),
                             "errors": dict(getattr(writer, "errors", {}))}
    stack.close()
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
