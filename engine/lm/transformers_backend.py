"""A Hugging Face `transformers` model behind the LanguageModel interface.

Loads any HF id or local checkpoint, or a GGUF file (the packaged default SmolLM2-135M-Instruct);
CUDA with bf16 when present, else CPU. Generation is one decode loop written for this product
rather than `generate`, because it needs four things `generate` does not give together:
- n samples of a prompt share one prefill;
- finished rows leave the batch;
- stop strings are honoured;
- cancellation is checked at every step.
"""
from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch

from engine.lm.generation import CancelToken, Completion, Prompt, SamplingParams
from engine.lm.model_source import ModelSource, load_tokenizer, resolve_model_source
from engine.lm.prompt_tokens import MIN_SHARED_PREFIX, encode_prompt, shared_prefix_length

END_TOKENS = ("<|im_end|>", "<|endoftext|>", "<|eot_id|>", "</s>")


def pick_device(device: str = "auto") -> str:
    if device != "auto":
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


@dataclass
class _Row:
    ids: list[int] = field(default_factory=list)
    text: str = ""
    finish: str | None = None
    emitted: int = 0  # characters already streamed


class TransformersModel:
    def __init__(self, model, tokenizer, name: str, device: str, source: ModelSource | None = None):
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.device = device
        self.source = source
        self.load_seconds = 0.0
        self.quantization = "none"
        self.backend = "transformers"
        ends = {tokenizer.eos_token_id, *_as_list(getattr(model.generation_config, "eos_token_id", None))}
        for token in END_TOKENS:
            token_id = tokenizer.convert_tokens_to_ids(token)
            if isinstance(token_id, int) and token_id != tokenizer.unk_token_id:
                ends.add(token_id)
        self.end_ids = {i for i in ends if i is not None}
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(self.end_ids)
        # Only the last position's logits are ever used: skip the vocabulary projection for the
        # rest of the prompt (about 15 ms of a 55 ms prefill for the default model on CPU).
        import inspect

        accepted = inspect.signature(model.forward).parameters
        self._last_only = {"logits_to_keep": 1} if "logits_to_keep" in accepted else {}

    @classmethod
    def load(cls, spec: str = "", device: str = "auto", dtype: torch.dtype | None = None,
             quantize: str = "none") -> TransformersModel:
        """`spec`: an HF id, a local checkpoint dir, a .gguf file, or "" for the packaged default.

        `quantize="int8"` (CPU only) stores Linear weights as per-channel int8 and quantizes
        activations on the fly. Measured on the default model on 2 cores: 38-45 tok/s
        single-stream instead of 14-16, and 265-380 tok/s batched. Greedy answers change
        somewhat, so it is off by default until evaluation shows its cost.
        """
        from engine.lm.transformers_imports import build_causal_lm

        started = time.perf_counter()
        source = resolve_model_source(spec)
        device = pick_device(device)
        dtype = dtype or (torch.bfloat16 if device.startswith("cuda") else torch.float32)
        extra = {"gguf_file": source.gguf_file} if source.gguf_file else {}
        tokenizer = load_tokenizer(source)
        model = build_causal_lm(source.path, dtype=dtype, **extra).to(device)
        model.eval()
        if quantize == "int8":
            if device != "cpu":
                raise ValueError("int8 quantization is for CPU inference; on CUDA use bf16")
            model = _quantize_int8(model)
        elif quantize != "none":
            raise ValueError(f"unknown quantization {quantize!r} (use 'none' or 'int8')")
        loaded = cls(model, tokenizer, source.display_name, device, source)
        loaded.quantization = quantize
        loaded.load_seconds = time.perf_counter() - started
        return loaded

    @property
    def precision(self) -> str:
        """What the arithmetic runs in, for results: "int8", else the weights' dtype ("bfloat16" on
        CUDA, "float32" on CPU; a GGUF's quantised weights are dequantised as they load)."""
        if self.quantization == "int8":
            return "int8"
        return str(next(self.model.parameters()).dtype).removeprefix("torch.")

    # -- prompts -------------------------------------------------------------------------------
    def encode(self, prompt: Prompt) -> list[int]:
        return encode_prompt(self.tokenizer, prompt)

    # -- public API ----------------------------------------------------------------------------
    def stream(self, prompt: Prompt, params: SamplingParams, cancel: CancelToken | None = None) -> Iterator[str]:
        rows = yield from self._generate([self.encode(prompt)], 1, params, cancel, stream=True)
        return rows[0]

    def complete(self, prompt: Prompt, params: SamplingParams, cancel: CancelToken | None = None) -> Completion:
        return self.sample(prompt, 1, params, cancel)[0]

    def sample(self, prompt: Prompt, n: int, params: SamplingParams,
               cancel: CancelToken | None = None) -> list[Completion]:
        return self.sample_many([prompt], n, params, cancel)[0]

    def sample_many(self, prompts: list[Prompt], n: int, params: SamplingParams,
                    cancel: CancelToken | None = None) -> list[list[Completion]]:
        generator = self._generate([self.encode(p) for p in prompts], n, params, cancel, stream=False)
        try:
            while True:
                next(generator)
        except StopIteration as done:
            flat = done.value
        return [flat[i * n:(i + 1) * n] for i in range(len(prompts))]

    # -- the decode loop -----------------------------------------------------------------------
    def _generate(self, prompts: list[list[int]], n: int, params: SamplingParams,
                  cancel: CancelToken | None, stream: bool):
        from transformers import DynamicCache

        if not prompts or n < 1:
            return []
        device = self.device
        # A prefix every prompt shares (a few-shot prompt) is computed once and its cache copied
        # to each row; the rows then hold [prefix][padding][rest of the prompt].
        shared = shared_prefix_length(prompts) if len(prompts) > 1 else 0
        if shared < MIN_SHARED_PREFIX:
            shared = 0
        rests = [p[shared:] for p in prompts]
        width = max(len(r) for r in rests)
        ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), shared + width), dtype=torch.long)
        mask[:, :shared] = 1
        for i, rest in enumerate(rests):  # left padding: every prompt ends at the last column
            ids[i, width - len(rest):] = torch.tensor(rest, dtype=torch.long)
            mask[i, shared + width - len(rest):] = 1
        ids, mask = ids.to(device), mask.to(device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        generator = torch.Generator(device=device)
        generator.manual_seed(params.seed if params.seed is not None else int.from_bytes(os.urandom(4), "little"))
        cache = DynamicCache()
        rows = [_Row() for _ in range(len(prompts) * n)]
        active = list(range(len(rows)))
        with torch.inference_mode():
            if shared:
                prefix = torch.tensor([prompts[0][:shared]], dtype=torch.long, device=device)
                self.model(input_ids=prefix, past_key_values=cache, use_cache=True, **self._last_only)
                cache.batch_repeat_interleave(len(prompts))
            logits = self.model(input_ids=ids, attention_mask=mask, position_ids=positions[:, shared:],
                                past_key_values=cache, use_cache=True, **self._last_only).logits[:, -1, :]
            if n > 1:  # one prefill per prompt, shared by its n samples
                cache.batch_repeat_interleave(n)
                logits = logits.repeat_interleave(n, dim=0)
                mask = mask.repeat_interleave(n, dim=0)
                positions = positions.repeat_interleave(n, dim=0)
            last_position = positions[:, -1]
            for step in range(params.max_new_tokens):
                if cancel is not None and cancel.cancelled:
                    for index in active:
                        rows[index].finish = "cancelled"
                    break
                chosen = self._choose(logits, params, generator).tolist()
                keep = []
                for slot, index in enumerate(active):
                    row = rows[index]
                    token = chosen[slot]
                    if token in self.end_ids:
                        row.finish = "eos"
                        continue
                    row.ids.append(token)
                    row.text = self.tokenizer.decode(row.ids, skip_special_tokens=True)
                    cut = _first_stop(row.text, params.stop)
                    if cut is not None:
                        row.text, row.finish = row.text[:cut], "stop"
                    elif step + 1 == params.max_new_tokens:
                        row.finish = "length"
                    else:
                        keep.append(slot)
                if stream:
                    delta = _releasable(rows[0], params.stop)
                    if delta:
                        yield delta
                if not keep:
                    active = []
                    break
                if len(keep) < len(active):  # finished rows leave the batch and the cache
                    index_tensor = torch.tensor(keep, device=device)
                    cache.batch_select_indices(index_tensor)
                    mask, last_position = mask[index_tensor], last_position[index_tensor]
                    chosen = [chosen[slot] for slot in keep]
                    active = [active[slot] for slot in keep]
                mask = torch.cat([mask, mask.new_ones((len(active), 1))], dim=1)
                last_position = last_position + 1
                logits = self.model(
                    input_ids=torch.tensor(chosen, device=device)[:, None], attention_mask=mask,
                    position_ids=last_position[:, None], past_key_values=cache, use_cache=True, **self._last_only,
                ).logits[:, -1, :]
        for index in active:
            rows[index].finish = rows[index].finish or "length"
        if stream:
            rows[0].emitted = min(rows[0].emitted, len(rows[0].text))
            tail = rows[0].text[rows[0].emitted:]
            if tail:
                yield tail
        return [Completion(row.text, len(row.ids), row.finish or "length") for row in rows]

    @staticmethod
    def _choose(logits: torch.Tensor, params: SamplingParams, generator: torch.Generator) -> torch.Tensor:
        if params.temperature == 0:
            return logits.argmax(dim=-1)
        logits = logits.float()
        if 0 < params.top_k < logits.shape[-1]:  # as transformers' TopKLogitsWarper: keep ties with the k-th
            kth = torch.topk(logits, params.top_k, dim=-1).values[..., -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        probs = torch.softmax(logits / params.temperature, dim=-1)
        if params.top_p < 1.0:
            sorted_probs, order = probs.sort(dim=-1, descending=True)
            outside = sorted_probs.cumsum(dim=-1) - sorted_probs > params.top_p
            sorted_probs = sorted_probs.masked_fill(outside, 0.0)
            probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
        return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def _quantize_int8(model):
    import warnings

    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization is deprecated in favour of torchao
        return quantize_dynamic(model, {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8)


def _as_list(value) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple, set)) else [value]


def _first_stop(text: str, stops: tuple[str, ...]) -> int | None:
    positions = [text.find(s) for s in stops]
    found = [p for p in positions if p >= 0]
    return min(found) if found else None


def _releasable(row: _Row, stops: tuple[str, ...]) -> str:
    """Text safe to stream now: not a half-decoded character, not the start of a stop string."""
    text = row.text
    end = len(text)
    if row.finish is None:
        while end > row.emitted and text[end - 1] == "\ufffd":
            end -= 1
        for stop in stops:
            for size in range(min(len(stop) - 1, end - row.emitted), 0, -1):
                if text[end - size:end] == stop[:size]:
                    end -= size
                    break
    delta = text[row.emitted:end] if end > row.emitted else ""
    row.emitted = max(row.emitted, end)
    return delta
