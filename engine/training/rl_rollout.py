"""GRPO's samples drawn by llama.cpp from the policy as it is at each step, instead of by TRL's
`model.generate`. Why: on a CPU, transformers decodes 8 answers of this model at 40-50 tokens/s,
so sampling was half of an RL step (benchmarks/rl_step_bench.py: 57.5 of 118.4 s on 2 cores);
llama.cpp draws the same batch from the same weights in 15.6 s, writing them included. Early
stopping's greedy answers to the validation tasks are decoded by it too.

Each step, before sampling, the policy's weights (a LoRA adapter added into its base weights, out of
place, so the trained weights are never touched) are written as an f16 GGUF with the metadata of the
GGUF the policy descends from (engine/lm/gguf_export.py, the copy every version is served from) and
loaded; a step that samples again with the same weights reuses them. The samples are taken with
the batched decoder (engine/lm/llama_cpp_batch.py) at the round's temperature, top-k, top-p and
length, seeded by (training seed, step), so a resumed round draws what it would have drawn.

What the trainer gets is what TRL's own path gives: the prompt's token ids (TRL's tokenisation),
the sampled token ids with the end token the model sampled, and no sampling log-probabilities, so
the loss is computed from the policy's own log-probabilities as with TRL's sampler. The f16 copy
rounds the weights: its next-token logits are within ~0.1 of the fp32 policy's (the check every
version's copy passes), so the samples come from a policy a rounding away from the trained one."""
from __future__ import annotations

import time
from pathlib import Path

SAMPLERS = ("auto", "transformers", "llama.cpp")
POLICY_FILE = "rollout-policy.f16.gguf"


def rollout_like(base: str) -> str | None:
    """The GGUF `base` descends from (its metadata is copied into each step's file), or None when the
    policy cannot be sampled by llama.cpp (no llama.cpp here, or a model that is not from a GGUF)."""
    from engine.lm import llama_cpp_backend
    from engine.lm.model_source import resolve_model_source

    if not llama_cpp_backend.available():
        return None
    try:
        return resolve_model_source(base).llama_file or None
    except (OSError, ValueError, LookupError):
        return None


def choose_sampler(choice: str, base: str, device: str) -> str:
    """"llama.cpp" or "transformers": `choice` as asked, or for "auto" llama.cpp on a CPU where the
    policy descends from a GGUF (on CUDA, TRL's own sampling runs on the GPU beside the training)."""
    if choice not in SAMPLERS:
        raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)} (got {choice!r})")
    if choice == "transformers" or (choice == "auto" and device != "cpu"):
        return "transformers"
    if rollout_like(base) is None:
        if choice == "llama.cpp":
            raise ValueError("the llama.cpp sampler needs llama.cpp installed and a policy that descends from a "
                             f"GGUF file; {base or 'the default model'!r} does not")
        return "transformers"
    return "llama.cpp"


def policy_weights(model) -> dict:
    """The policy's weights under the plain transformers names, as float32 numpy arrays: a LoRA
    model's adapters added to their base weights (a new tensor each; the model is not changed)."""
    import torch
    from peft import PeftModel
    from peft.tuners.lora import LoraLayer

    base = model.get_base_model() if isinstance(model, PeftModel) else model
    with torch.no_grad():
        weights = {key.replace(".base_layer.", "."): value for key, value in base.state_dict().items()
                   if ".lora_" not in key}
        for name, module in base.named_modules():
            if isinstance(module, LoraLayer) and not module.merged:
                delta = sum(module.get_delta_weight(adapter) for adapter in module.active_adapters
                            if adapter in module.lora_A)
                weights[f"{name}.weight"] = module.base_layer.weight + delta
        return {key: value.detach().to(torch.float32).cpu().numpy() for key, value in weights.items()}


class LlamaCppRollout:
    """TRL's `rollout_func`: `(prompts, trainer) -> {"prompt_ids", "completion_ids", "logprobs"}`."""

    def __init__(self, like: str, folder: Path, max_new_tokens: int, temperature: float, top_k: int,
                 top_p: float, seed: int, threads: int | None = None):
        self.like, self.path = like, Path(folder) / POLICY_FILE
        self.max_new_tokens, self.temperature, self.top_k, self.top_p = max_new_tokens, temperature, top_k, top_p
        self.seed, self.threads = seed, threads
        self._llm = self._decoder = None
        self._loaded_step: int | None = None
        self.export_seconds = self.sample_seconds = 0.0

    def __call__(self, prompts: list, trainer) -> dict:
        from engine.lm.generation import SamplingParams

        step = trainer.state.global_step
        self._load(trainer.model, step)
        prompt_ids, _, _ = trainer._tokenize_prompts(prompts)  # the ids TRL's own sampler would get
        params = SamplingParams(max_new_tokens=self.max_new_tokens, temperature=self.temperature,
                                top_k=self.top_k, top_p=self.top_p, seed=self.seed * 1_000_003 + step)
        started = time.perf_counter()
        sequences = self._decoder.sequences([list(ids) for ids in prompt_ids], 1, params)
        self.sample_seconds += time.perf_counter() - started
        completion_ids = [s.ids + ([s.end_token] if s.end_token is not None else []) for s in sequences]
        return {"prompt_ids": prompt_ids, "completion_ids": completion_ids, "logprobs": None}

    def greedy_answers(self, model, tokenizer, tasks, max_new_tokens: int, step: int) -> list[str]:
        """The policy's greedy answer to each task's chat prompt (early stopping's validation,
        early_stopping.py). A validation after a step writes the weights the next step samples from."""
        from engine.lm.generation import SamplingParams
        from engine.lm.prompt_tokens import encode_prompt

        self._load(model, step)
        prompts = [encode_prompt(tokenizer, task.prompt()) for task in tasks]
        started = time.perf_counter()
        done = self._decoder.generate(prompts, 1, SamplingParams(max_new_tokens=max_new_tokens, temperature=0.0))
        self.sample_seconds += time.perf_counter() - started
        return [completions[0].text for completions in done]

    def _load(self, model, step: int) -> None:
        """The policy of `step` written and loaded, unless it already is."""
        from llama_cpp import Llama

        from engine.lm.gguf_export import write_gguf
        from engine.lm.llama_cpp_backend import default_threads
        from engine.lm.llama_cpp_batch import BatchDecoder

        if step == self._loaded_step:
            return
        started = time.perf_counter()
        self.close()
        config = (model.get_base_model() if hasattr(model, "get_base_model") else model).config.to_dict()
        write_gguf(policy_weights(model), config, self.like, self.path, "f16")
        threads = self.threads or default_threads()
        self._llm = Llama(model_path=str(self.path), n_ctx=512, n_threads=threads, n_threads_batch=threads,
                          verbose=False, seed=0)
        self._decoder = BatchDecoder(self._llm)
        self._loaded_step = step
        self.export_seconds += time.perf_counter() - started

    def close(self) -> None:
        """Free the loaded copy (its file stays until `remove`)."""
        if self._decoder is not None:
            self._decoder.close()
        if self._llm is not None:
            self._llm.close()
        self._llm = self._decoder = None
        self._loaded_step = None

    def remove(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)
