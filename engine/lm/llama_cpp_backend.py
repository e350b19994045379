"""GGUF models served by llama.cpp behind the same LanguageModel interface.

Why: on a CPU, llama.cpp streams the default model about 8x faster than the torch backend in
fp32 (measured on 2 cores: ~110 tok/s against ~14), and int8 torch inference, the other way to
speed it up, costs too much quality (benchmarks/quantization_quality.py). The torch backend stays
the one for checkpoints from training rounds without a GGUF copy, and for GPUs. n samples and
many prompts (`sample`, `sample_many`) are decoded together by engine/lm/llama_cpp_batch.py.

Prompts are tokenised with the Hugging Face tokenizer and its chat template, so both backends
see exactly the same tokens. `llama-cpp-python` is an optional dependency (it builds from source).
"""
from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from dataclasses import replace

from engine.lm.generation import CancelToken, Completion, Prompt, SamplingParams
from engine.lm.model_source import ModelSource, load_tokenizer, resolve_model_source
from engine.lm.prompt_tokens import encode_prompt
from engine.lm.weight_types import gguf_weight_type

DEFAULT_CONTEXT = 8192


def available() -> bool:
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        return False
    return True


def has_bf16_kernels() -> bool:
    """Whether this llama.cpp build multiplies bf16 weights with the CPU's bf16 dot products: only a
    build for such a CPU (`make llama-bf16`; the portable build `make install` makes is AVX2)."""
    if not available():
        return False
    import llama_cpp

    return "AVX512_BF16 = 1" in llama_cpp.llama_print_system_info().decode(errors="replace")


def default_threads() -> int:
    """AUTODIDACT_MODEL_THREADS (where two model workers share the cores), else every core."""
    raw = os.environ.get("AUTODIDACT_MODEL_THREADS", "").strip()
    return int(raw) if raw.isdigit() and int(raw) > 0 else (os.cpu_count() or 1)


class LlamaCppModel:
    def __init__(self, llm, tokenizer, name: str, source: ModelSource):
        self.llm = llm
        self.tokenizer = tokenizer
        self.name = name
        self.source = source
        self.device = "cpu"
        self.quantization = "gguf"  # set to the file's weight type on load
        self.backend = "llama.cpp"
        self.load_seconds = 0.0
        self._lock = threading.Lock()  # one generation at a time (the CPU is busy with it anyway)
        self._batch_decoder = None  # a second context, for batched sampling (made on first use)

    @classmethod
    def load(cls, spec: str = "", context: int = DEFAULT_CONTEXT, threads: int | None = None,
             weights: str = "f16") -> LlamaCppModel:
        """`spec` must name a GGUF file, a checkpoint with a checked GGUF copy, or "" (the packaged
        default). A checkpoint is served from its `weights` copy where it has a checked one (a
        trained version's bf16 copy, made at its seal on bf16 CPUs), else from its f16 copy."""
        from llama_cpp import Llama

        from engine.lm.gguf_export import served_copy

        started = time.perf_counter()
        source = resolve_model_source(spec)
        other = served_copy(source.path, weights) if source.kind == "local-dir" and weights != "f16" else None
        if other is not None:
            source = replace(source, served_gguf=str(other.resolve()))
        if not source.llama_file:
            raise ValueError(f"llama.cpp serves GGUF files only; {source.display_name} is a {source.kind} model "
                             "without a checked GGUF copy (python -m engine.lm.gguf_export)")
        tokenizer = load_tokenizer(source)
        threads = threads or default_threads()  # for prompts and batches too
        llm = Llama(model_path=source.llama_file, n_ctx=context, n_threads=threads, n_threads_batch=threads,
                    verbose=False, seed=0)
        model = cls(llm, tokenizer, source.display_name, source)
        model.quantization = gguf_weight_type(source.llama_file)
        model.load_seconds = time.perf_counter() - started
        return model

    @property
    def precision(self) -> str:
        """The served file's weight type (f16, q4_1, ...): llama.cpp computes from those weights."""
        return self.quantization

    def close(self) -> None:
        """Free the model while the interpreter still runs (llama-cpp-python's own __del__ at exit
        finds its C library gone and prints a traceback)."""
        with self._lock:
            if self._batch_decoder is not None:
                self._batch_decoder.close()
                self._batch_decoder = None
            if self.llm is not None:
                self.llm.close()
                self.llm = None

    def encode(self, prompt: Prompt) -> list[int]:
        return encode_prompt(self.tokenizer, prompt)

    def stream(self, prompt: Prompt, params: SamplingParams, cancel: CancelToken | None = None) -> Iterator[str]:
        """Text deltas; returns the Completion. Cancellation is noticed before the next token."""
        tokens, text, finish = 0, "", "length"
        with self._lock:
            pieces = self.llm.create_completion(
                prompt=self.encode(prompt), max_tokens=params.max_new_tokens, temperature=params.temperature,
                top_p=params.top_p, top_k=params.top_k, min_p=0.0, repeat_penalty=1.0, stop=list(params.stop) or None,
                seed=params.seed if params.seed is not None else 0, stream=True)
            try:
                for piece in pieces:
                    choice = piece["choices"][0]
                    delta = choice.get("text") or ""
                    if delta:
                        tokens += 1
                        text += delta
                        yield delta
                    if choice.get("finish_reason"):
                        finish = choice["finish_reason"]
                        break
                    if cancel is not None and cancel.cancelled:
                        finish = "cancelled"
                        break
            finally:
                pieces.close()
        if finish == "stop":  # llama.cpp says "stop" for a stop string and the end token alike
            finish = "stop" if params.stop else "eos"
        return Completion(text, tokens, finish)

    def complete(self, prompt: Prompt, params: SamplingParams, cancel: CancelToken | None = None) -> Completion:
        stream = self.stream(prompt, params, cancel)
        while True:
            try:
                next(stream)
            except StopIteration as done:
                return done.value

    def sample(self, prompt: Prompt, n: int, params: SamplingParams,
               cancel: CancelToken | None = None) -> list[Completion]:
        """n completions decoded together, sharing one prefill."""
        return self.sample_many([prompt], n, params, cancel)[0]

    def sample_many(self, prompts: list[Prompt], n: int, params: SamplingParams,
                    cancel: CancelToken | None = None) -> list[list[Completion]]:
        """n completions of each prompt, all decoded together (engine/lm/llama_cpp_batch.py)."""
        from engine.lm.llama_cpp_batch import BatchDecoder

        encoded = [self.encode(prompt) for prompt in prompts]
        with self._lock:
            if self._batch_decoder is None:
                self._batch_decoder = BatchDecoder(self.llm)
            return self._batch_decoder.generate(encoded, n, params, cancel)

    def sample_sequential(self, prompt: Prompt, n: int, params: SamplingParams,
                          cancel: CancelToken | None = None) -> list[Completion]:
        """n completions one after another, through `complete` (the path before batching; kept for
        benchmarks/eval_bench.py to compare against)."""
        completions = []
        for index in range(n):
            seed = None if params.seed is None else params.seed + index
            if index:
                # llama-cpp-python 0.3 crashes (SIGSEGV in decode) when a prompt it holds entirely in
                # its cache is evaluated again: forget the cache between samples of one prompt.
                with self._lock:
                    self.llm.reset()
            completions.append(self.complete(prompt, _with_seed(params, seed), cancel))
        return completions

    def sample_many_sequential(self, prompts: list[Prompt], n: int, params: SamplingParams,
                               cancel: CancelToken | None = None) -> list[list[Completion]]:
        return [self.sample_sequential(prompt, n, params, cancel) for prompt in prompts]


def _with_seed(params: SamplingParams, seed: int | None) -> SamplingParams:
    from dataclasses import replace

    return replace(params, seed=seed)


def smoke_test() -> bool:
    """Generate a few tokens in a child process: a llama.cpp build that crashes on this CPU (a
    native build's AMX code, say) takes down only the child. True when it works."""
    import subprocess
    import sys

    if not available():
        return False
    code = ("from engine.lm.llama_cpp_backend import LlamaCppModel\n"
            "from engine.lm.generation import SamplingParams\n"
            "m = LlamaCppModel.load('', context=512)\n"
            "m.sample('def add(a, b):', 2, SamplingParams(max_new_tokens=4, temperature=0.8, seed=1))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=300,
                          cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    return done.returncode == 0


if __name__ == "__main__":
    import sys

    if "--smoke-test" in sys.argv:
        ok = smoke_test()
        print("llama.cpp works here" if ok else "llama.cpp is missing or crashes on this machine: "
              "the transformers backend will serve the model", file=sys.stderr)
        sys.exit(0 if ok else 1)
