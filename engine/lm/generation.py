"""What callers ask a language model for, and what they get back (backend-independent)."""
from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

Prompt = str | list[dict]  # raw text (completion prompts) or chat messages {"role", "content"}


@dataclass(frozen=True)
class SamplingParams:
    max_new_tokens: int = 256
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 1.0  # sample from the smallest set of tokens whose probability reaches top_p
    top_k: int = 0  # sample from the k most likely tokens (0: no limit); both apply when both are set
    stop: tuple[str, ...] = ()  # generation ends before the first of these strings
    seed: int | None = None  # same seed, same prompt, same settings: same samples

    def __post_init__(self):
        if self.max_new_tokens < 1:
            raise ValueError("max_new_tokens must be at least 1")
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise ValueError("temperature must be >= 0 and top_p in (0, 1]")
        if self.top_k < 0:
            raise ValueError("top_k must be at least 0 (0: no limit)")
        object.__setattr__(self, "stop", tuple(s for s in self.stop if s))


@dataclass
class Completion:
    text: str
    tokens: int
    finish_reason: str  # "stop" (a stop string), "eos", "length" or "cancelled"


class CancelToken:
    """Set from any thread; generation notices it before the next decode step."""

    def __init__(self):
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()


class LanguageModel(Protocol):
    """What every backend (transformers, llama.cpp) offers its callers: the chat, self-play,
    evaluation and the model runtime use nothing else."""

    name: str  # what records and pages call the model
    device: str  # "cpu", "cuda", ...
    backend: str  # "transformers" or "llama.cpp"
    quantization: str  # "none", "int8" (torch dynamic), or a GGUF file's weight type ("f16", "q4_1", ...)
    load_seconds: float
    tokenizer: Any  # a Hugging Face tokenizer (chat template, token boundaries of prompts)

    def encode(self, prompt: Prompt) -> list[int]:
        """The prompt's token ids, as the model would be given them (chat template applied)."""

    def complete(self, prompt: Prompt, params: SamplingParams, cancel: CancelToken | None = None) -> Completion:
        """One completion."""

    def stream(self, prompt: Prompt, params: SamplingParams, cancel: CancelToken | None = None) -> Iterator[str]:
        """Text deltas as tokens are produced; the generator's return value is the Completion."""

    def sample(self, prompt: Prompt, n: int, params: SamplingParams,
               cancel: CancelToken | None = None) -> list[Completion]:
        """n completions of one prompt (sharing one prefill)."""

    def sample_many(self, prompts: list[Prompt], n: int, params: SamplingParams,
                    cancel: CancelToken | None = None) -> list[list[Completion]]:
        """n completions for each of several prompts, batched."""
