"""Batched llama.cpp decoding of many distinct prompts: one wave of a unified KV cache against
waves capped by KV cells, against a cache stream per sequence, and waves against refill.

The case is the dialog study's repair turn: every dialog has its own ~1,000-token history and the
student fills most of its budget. In llama.cpp's unified KV cache each sequence's attention spans
every cell of its wave, so one wave of k long prompts costs ~k x (k x length) a step. The capped
side admits prompts while the live ones reserve at most --cells cells (engine/lm/llama_cpp_batch.py,
`admits`), in waves or with refill; "streams" gives each sequence a cache stream of its own (llama.cpp's non-unified
KV cache, the decoder's choice for distinct prompts), so its attention spans its own cells only; the
baseline runs it as one wave (the decoder before the cap). Same model, prompts, sampling and seed
on every side; the figure is generated tokens per second of wall time.

    python benchmarks/batch_waves.py [--model ""] [--prompts 24] [--length 1000] [--tokens 256] [--cells 4096 8192]

`--case code-check` measures the round gate's forgetting check instead (MBPP validation 511-600,
greedy, the MBPP paper's 3-shot prompt, 512 new tokens, through the benchmark suite and the
sandbox): waves, where a wave waits for its slowest sequence before the next prompts start (the
decoder before refill), against refill, where a waiting prompt takes the cells of each sequence
that finishes; each with the suite's chunk of 8 tasks a request and with larger chunks. Same
model, prompts and greedy decoding on every side; it prints tok/s, wall time and tasks passed.

    python benchmarks/batch_waves.py --case code-check [--problems 90] [--chunks 8 32 90]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.datasets.mbpp import load_mbpp  # noqa: E402
from engine.evaluate.suite.base import benchmark_data_dir  # noqa: E402
from engine.lm.generation import SamplingParams  # noqa: E402
from engine.lm.llama_cpp_backend import LlamaCppModel  # noqa: E402
from engine.lm.llama_cpp_batch import BatchDecoder  # noqa: E402

UNCAPPED = 10**9


def dialog_prompts(model: LlamaCppModel, count: int, length: int) -> list[list[int]]:
    """`count` distinct prompts of exactly `length` tokens: chat turns holding MBPP train tasks,
    their code and tests, as a dialog history holds them."""
    tasks = [t for t in load_mbpp(benchmark_data_dir(None)).values() if t.split == "train"]
    prompts = []
    for i in range(count):
        text, j = "", i
        while len(model.encode([{"role": "user", "content": text}])) < length:
            task = tasks[j % len(tasks)]
            text += f"{task.text}\n```python\n{task.code}\n```\n" + "\n".join(task.tests) + "\nThat fails; fix it.\n"
            j += count
        prompts.append(model.encode([{"role": "user", "content": text}])[:length])
    return prompts


def run(decoder: BatchDecoder, prompts: list[list[int]], params: SamplingParams) -> dict:
    started = time.perf_counter()
    completions = decoder.generate(prompts, 1, params)
    seconds = time.perf_counter() - started
    tokens = sum(c[0].tokens for c in completions)
    return {"seconds": round(seconds, 1), "tokens": tokens, "tok_s": round(tokens / seconds, 1)}


def code_check(model: LlamaCppModel, problems: int, chunks: list[int]) -> dict:
    """The gate's code check through the suite, with the decoder in waves and with refill."""
    from engine.evaluate.suite.registry import get_benchmark
    from engine.evaluate.suite.runner import RunSettings, run_benchmark
    from engine.sandbox import verify_many

    suite = get_benchmark("mbpp-validation", benchmark_data_dir(None))
    results = {}
    for refill in (False, True):
        for chunk in chunks:
            model._batch_decoder = BatchDecoder(model.llm, refill=refill)
            result = run_benchmark(suite, model, RunSettings(limit=problems), lambda jobs: verify_many(jobs),
                                   chunk=chunk)
            label = f"{'refill' if refill else 'waves'}, chunk {chunk}"
            results[label] = {"seconds": result.seconds, "tokens": result.tokens,
                              "tok_s": round(result.tokens / result.seconds, 1), "passed": result.solved,
                              "problems": result.done}
            model._batch_decoder.close()
            print(f"{label:>18}: {results[label]}", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=["dialog", "code-check"], default="dialog")
    parser.add_argument("--problems", type=int, default=90, help="code-check: MBPP validation tasks")
    parser.add_argument("--chunks", type=int, nargs="+", default=[8, 32, 90], help="code-check: tasks a request")
    parser.add_argument("--model", default="")
    parser.add_argument("--prompts", type=int, default=24)
    parser.add_argument("--length", type=int, default=1000)
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--cells", type=int, nargs="+", default=[4096])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    model = LlamaCppModel.load(args.model)
    if args.case == "code-check":
        results = code_check(model, args.problems, args.chunks)
        base = next(iter(results.values()))["tok_s"]
        for label, figures in results.items():
            print(f"{label:>18}: {figures['tok_s']:7.1f} tok/s  {figures['tok_s'] / base:5.2f}x waves  "
                  f"{figures['seconds']} s, {figures['passed']}/{figures['problems']} passed")
        save(args, results)
        model.close()
        return
    prompts = dialog_prompts(model, args.prompts, args.length)
    params = SamplingParams(max_new_tokens=args.tokens, temperature=0.5, seed=0)
    results = {}
    for cells, refill in [(UNCAPPED, False), *[(c, r) for c in args.cells for r in (False, True)],
                          ("streams", False), ("streams", True)]:
        streams = cells == "streams"
        decoder = BatchDecoder(model.llm, max_wave_cells=UNCAPPED if streams else cells, streams=streams,
                               refill=refill)
        waves = 1 if streams or cells == UNCAPPED else -(-len(prompts) // max(1, cells // (args.length + args.tokens)))
        label = ("stream a sequence" if streams else "one wave" if cells == UNCAPPED else f"cap {cells} cells") \
            + (", refill" if refill else "")
        results[label] = {"waves": "-" if refill else waves, **run(decoder, prompts, params)}
        decoder.close()
        print(f"{label:>26}: {results[label]}", flush=True)
    base = results["one wave"]["tok_s"]
    for label, figures in results.items():
        print(f"{label:>26}: {figures['tok_s']:7.1f} tok/s  {figures['tok_s'] / base:5.2f}x one wave "
              f"({figures['waves']} waves, {figures['tokens']} tokens, {figures['seconds']} s)")
    save(args, results)
    model.close()


def save(args: argparse.Namespace, results: dict) -> None:
    if args.json:
        args.json.write_text(json.dumps({"settings": vars(args) | {"json": str(args.json)}, "results": results},
                                        indent=2))


if __name__ == "__main__":
    main()
