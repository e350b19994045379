"""Evaluation throughput on a CPU: P3 test puzzles x n samples through the evaluation runner, for the
three ways this project can sample, on the same full-precision model, in one run.

- transformers fp32: TransformersModel.load("") and its batched `sample_many` (shared prefill,
  finished rows leave the batch);
- llama.cpp sequential: the packaged model's checked f16 GGUF, one sample after another
  (`LlamaCppModel.sample_many_sequential`, the path before batching);
- llama.cpp batched: the same f16 GGUF, every sample of a runner chunk in one llama_decode a step
  (engine/lm/llama_cpp_batch.py, what `sample_many` does now).

Each run is `run_benchmark(get_benchmark("p3"), model, RunSettings(...), verify)` with the
"completion" prompts, T = 0.8, top-k 50, 150 new tokens (the P3 defaults), seed 0. Reported: the
generation tokens/s (time inside `sample_many` only), the run's wall time (sampling and checking),
pass@1 and pass@10, and each backend's ratios to transformers fp32 (target: batched llama.cpp
>= 4x its tokens/s). All backends use --threads (default: every core). On a shared machine, prefer
--threads 1: two threads that other processes keep descheduling wait on each other at every
operation (measured here: llama.cpp batched 51 tok/s with 2 threads against 120 with 1).

    python benchmarks/eval_bench.py [--puzzles 20] [--n 10] [--threads N] [--skip NAME ...] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.evaluate.suite.registry import get_benchmark  # noqa: E402
from engine.evaluate.suite.runner import RunSettings, run_benchmark  # noqa: E402
from engine.lm.generation import SamplingParams  # noqa: E402

BACKENDS = ("transformers fp32", "llama.cpp sequential", "llama.cpp batched")
REFERENCE = "transformers fp32"


class Timed:
    """A model whose `sample_many` (or a stand-in for it) is timed: the runner's wall time also
    holds the sandbox's checking, which is the same for every backend."""

    def __init__(self, model, sample_many=None):
        self.model = model
        self._sample_many = sample_many or model.sample_many
        self.seconds = 0.0

    def __getattr__(self, name):
        return getattr(self.model, name)

    def sample_many(self, *args, **kwargs):
        started = time.perf_counter()
        try:
            return self._sample_many(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - started


def load(name: str, threads: int, cache: dict):
    if name == REFERENCE:
        import torch

        from engine.lm.transformers_backend import TransformersModel

        torch.set_num_threads(threads)
        return Timed(TransformersModel.load(""))
    if "llama" not in cache:
        from engine.lm.llama_cpp_backend import LlamaCppModel
        from engine.lm.loading import load_full_precision

        f16 = load_full_precision("", backend="llama.cpp")  # the packaged model's checked f16 copy
        cache["llama"] = LlamaCppModel.load(f16.source.llama_file, threads=threads)
        cache["llama"].name = f16.name
    model = cache["llama"]
    return Timed(model, model.sample_many_sequential if name == "llama.cpp sequential" else None)


def measure(name: str, model: Timed, settings: RunSettings, verify) -> dict:
    warm = SamplingParams(max_new_tokens=8, temperature=0.8, top_k=50, seed=0)
    model.model.sample_many(["def f(x: int):\n    return x > 3\n\ndef g():\n"], 2, warm)  # contexts made, caches warm
    started = time.perf_counter()
    result = run_benchmark(get_benchmark("p3"), model, settings, verify)
    wall = time.perf_counter() - started
    return {"backend": name, "model": f"{model.name} ({model.quantization})", "tasks": result.tasks,
            "samples": result.tasks * settings.n, "tokens": result.tokens, "generation_s": round(model.seconds, 1),
            "tokens_per_s": round(result.tokens / model.seconds, 1) if model.seconds else 0.0,
            "wall_s": round(wall, 1), "pass_at_k": result.pass_at_k}


def checker_tasks_per_s_vs_evalplus(path: Path | None) -> dict | None:
    """(b) checking throughput: the suite's checker against EvalPlus's evaluator on the same
    HumanEval+ samples, as benchmarks/harness_agreement.py measured them in the same session
    (its --json output; that script runs EvalPlus from its own virtual environment). None when
    no such file was given."""
    if path is None:
        return None
    report = json.loads(path.read_text())
    figures = report["benchmarks"].get("humaneval-plus")
    if not figures:
        return None
    return {"samples": figures.get("samples"), "ours_per_s": figures["ours_per_s"],
            "evalplus_per_s": figures["theirs_per_s"],
            "ratio": round(figures["ours_per_s"] / figures["theirs_per_s"], 2) if figures["theirs_per_s"] else 0.0,
            "target": ">= 5x", "source": str(path)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--puzzles", type=int, default=20, help="the first N P3 test puzzles")
    parser.add_argument("--n", type=int, default=10, help="samples per puzzle")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--skip", nargs="*", default=[], choices=BACKENDS, metavar="NAME",
                        help=f"backends to leave out ({', '.join(repr(b) for b in BACKENDS)})")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--checker-json", type=Path,
                        help="benchmarks/harness_agreement.py --json output, for (b) checker tasks/s vs EvalPlus")
    args = parser.parse_args()

    from engine.sandbox import verify_many

    settings = RunSettings(prompt="completion", n=args.n, temperature=0.8, top_k=50, top_p=1.0, max_tokens=150,
                           seed=0, limit=args.puzzles, ks=(1, 10))
    rows, cache = [], {}
    for name in BACKENDS:
        if name in args.skip:
            continue
        rows.append(measure(name, load(name, args.threads, cache), settings, lambda jobs: verify_many(jobs)))
        print(f"{name}: done in {rows[-1]['wall_s']} s", file=sys.stderr, flush=True)

    print(f"P3 test, first {args.puzzles} puzzles x n={args.n}, completion prompts, T=0.8, top-k 50, 150 new tokens; "
          f"{args.threads} thread(s) on {os.cpu_count()} cores")
    print(f"{'backend':<22}{'model':<34}{'tokens':>8}{'gen s':>8}{'tok/s':>8}{'wall s':>8}"
          f"{'pass@1':>8}{'pass@10':>9}")
    for row in rows:
        print(f"{row['backend']:<22}{row['model']:<34}{row['tokens']:>8}{row['generation_s']:>8.1f}"
              f"{row['tokens_per_s']:>8.1f}{row['wall_s']:>8.1f}{row['pass_at_k'].get('1', 0):>8.3f}"
              f"{row['pass_at_k'].get('10', 0):>9.3f}")
    reference = next((row for row in rows if row["backend"] == REFERENCE), None)
    if reference is not None:
        for row in rows:
            if row is not reference:
                row["vs_transformers"] = {"tokens_per_s": round(row["tokens_per_s"] / reference["tokens_per_s"], 2),
                                          "wall": round(reference["wall_s"] / row["wall_s"], 2)}
                print(f"{row['backend']}: {row['vs_transformers']['tokens_per_s']}x transformers fp32's tokens/s, "
                      f"{row['vs_transformers']['wall']}x faster end to end"
                      + (" (target >= 4x tokens/s)" if row["backend"] == "llama.cpp batched" else ""))
    by_name = {row["backend"]: row for row in rows}
    if {"llama.cpp sequential", "llama.cpp batched"} <= by_name.keys():
        batched, sequential = by_name["llama.cpp batched"], by_name["llama.cpp sequential"]
        print(f"llama.cpp batched: {batched['tokens_per_s'] / sequential['tokens_per_s']:.2f}x "
              f"its sequential tokens/s, {sequential['wall_s'] / batched['wall_s']:.2f}x faster end to end")
    checker = checker_tasks_per_s_vs_evalplus(args.checker_json)
    print("checker tasks/s vs EvalPlus on HumanEval+: "
          + (f"{checker['ours_per_s']}/s vs {checker['evalplus_per_s']}/s, x{checker['ratio']} (target >= 5x)"
             if checker else "not measured (pass --checker-json from benchmarks/harness_agreement.py --json)"))
    if args.json:
        args.json.write_text(json.dumps({"settings": settings.as_dict(), "threads": args.threads, "rows": rows,
                                         "checker_vs_evalplus": checker}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
