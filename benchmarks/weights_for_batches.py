"""Which weights llama.cpp should decode with on this CPU: the packaged Q4_1 GGUF of the default
model or its checked f16 (or bf16) copy, for a batch (puzzle writing) and for one reply (chat).

The batch is the self-play generate stage's request: one puzzle-writing prompt of the paper's
completion form (~1,830 tokens of P3 training puzzles) and `--samples` samples of it, `--tokens`
new tokens each, the paper's sampling (T 0.9, top-k 50), seed 0, through the batched decoder
(engine/lm/llama_cpp_batch.py). The single stream is one greedy chat reply of `--tokens` tokens.
The weight files are loaded in one process and measured alternately, `--rounds` times, so a
machine that slows down or speeds up meanwhile affects all sides alike; printed: each round's
tokens/s and the median ratio of each type to Q4_1. A bf16 copy (`--weights q4_1,f16,bf16`) is
made and checked like the f16 one; llama.cpp multiplies bf16 natively only when built for a CPU
with bf16 dot products (`PYTHONPATH=<a GGML_NATIVE=ON build> python benchmarks/…` measures that).

    python benchmarks/weights_for_batches.py [--rounds 3] [--samples 64] [--tokens 200] [--weights q4_1,f16]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.lm.generation import SamplingParams  # noqa: E402
from engine.lm.loading import load_full_precision, load_model  # noqa: E402
from engine.selfplay.__main__ import _train_puzzles  # noqa: E402
from engine.selfplay.generation_prompt import generation_prompt  # noqa: E402
from engine.selfplay.pipeline import SelfPlayConfig  # noqa: E402

REPLY = [{"role": "user", "content": "Write a Python function that checks whether a string is a palindrome, "
                                     "with tests."}]


def timed(run, model) -> tuple[int, float]:
    started = time.perf_counter()
    tokens = run(model)
    return tokens, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--p3", default=str(ROOT.parent / "shared" / "data" / "p3"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--weights", default="q4_1,f16", help="q4_1 (the packaged file) and copies: f16, bf16, f32")
    parser.add_argument("--copies", type=Path, default=ROOT / "var" / "full-precision",
                        help="where copies other than the installed f16 one are made (once)")
    args = parser.parse_args()

    import llama_cpp

    print(f"llama.cpp {llama_cpp.__file__}: {llama_cpp.llama_print_system_info().decode()}", flush=True)
    models = {name: load_model("", "llama.cpp") if name == "q4_1" else
              load_full_precision("", "llama.cpp", str(args.copies), weights=name) for name in args.weights.split(",")}
    first = next(iter(models.values()))
    config = SelfPlayConfig(puzzles_per_prompt=args.samples, generation_tokens=args.tokens, seed=0, form="completion")
    prompt = generation_prompt(_train_puzzles(args.p3), lambda text: len(first.encode(text)),
                               config.context_tokens, config.generation_tokens).text
    params = config.generation_params(0)
    reply = SamplingParams(max_new_tokens=args.tokens)
    runs = {"batch": lambda m: sum(c.tokens for c in m.sample(prompt, args.samples, params)),
            "single": lambda m: m.complete(REPLY, reply).tokens}
    rates: dict[str, dict[str, list[float]]] = {kind: {name: [] for name in models} for kind in runs}
    for round_ in range(args.rounds):
        for kind, run in runs.items():
            for name, model in models.items():
                tokens, seconds = timed(run, model)
                rates[kind][name].append(round(tokens / seconds, 1))
                print(f"round {round_}: {kind:>6} {name:>4} {tokens:6d} tokens {seconds:6.1f} s "
                      f"{tokens / seconds:6.1f} tok/s", flush=True)
    summary = {}
    reference = "q4_1" if "q4_1" in models else next(iter(models))
    for kind, by_weights in rates.items():
        ratios = {f"median_ratio_{name}_over_{reference}": round(statistics.median(
            a / b for a, b in zip(by_weights[name], by_weights[reference])), 2) for name in by_weights if name != reference}
        summary[kind] = {"tok_s": by_weights, **ratios}
        print(f"{kind}: " + " / ".join(f"{name} {rates_}" for name, rates_ in by_weights.items())
              + f" tok/s; {ratios}")
    if args.json:
        args.json.write_text(json.dumps({"settings": {k: str(v) for k, v in vars(args).items()},
                                         "llama_cpp": llama_cpp.llama_print_system_info().decode(),
                                         "prompt_tokens": len(first.encode(prompt)), **summary}, indent=2))
    for model in models.values():
        model.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
