"""Where an RL (GRPO) step's time goes, with each sampler, in one run: TRL's own `model.generate`
against llama.cpp sampling the policy written as GGUF each step (engine/training/rl_rollout.py).

Both arms run the same steps from the same base on the same MBPP train tasks with the same settings
(LoRA, 2 prompts x 4 samples a step, at most 256 new tokens, T 0.8, top-k 50, seed 0); only the
sampler differs, so the samples differ too (their mean length is printed). It prints seconds per
step, split into sampling (with the GGUF export for llama.cpp), the reference model's and the
policy's log-probabilities, and the rest (reward, backward, optimizer), each arm's peak resident
memory, and the ratio of the two.

    python benchmarks/rl_step_bench.py --steps 4
"""
from __future__ import annotations

import argparse
import functools
import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SAMPLERS = ("transformers", "llama.cpp")


def timed_trainer(totals: dict):
    """GRPOTrainer with its sampling, log-probability and step methods timed into `totals`."""
    from trl import GRPOTrainer

    def wrap(name: str, label: str):
        method = getattr(GRPOTrainer, name)

        @functools.wraps(method)
        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                totals[label] += time.perf_counter() - started
        setattr(GRPOTrainer, name, timed)
        return method

    return {name: wrap(name, label) for name, label in (
        ("_generate_single_turn", "sampling"), ("_get_per_token_logps_and_entropies", "logps"),
        ("_calculate_rewards", "reward"),
        ("_generate_and_score_completions", "sample_and_score"), ("training_step", "step"))}


class PeakMemory:
    """The process's largest resident set while the block runs, sampled every 0.1 s (ru_maxrss would
    carry one arm's peak into the next)."""

    def __enter__(self):
        import threading

        self.peak, self._done = 0, threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self):
        import psutil  # as load_bench.py's MemoryWatch, which watches every process of a site

        process = psutil.Process()
        while not self._done.wait(0.1):
            self.peak = max(self.peak, process.memory_info().rss)

    def __exit__(self, *exc):
        self._done.set()
        self._thread.join()


def run_arm(sampler: str, steps: int, tasks, out: Path) -> dict:
    from trl import GRPOTrainer

    from engine.sandbox import verify_many
    from engine.training.grounding import GroundingConfig
    from engine.training.rl import RLConfig, train_rl

    totals: dict = defaultdict(float)
    originals = timed_trainer(totals)
    lengths: list[float] = []
    try:
        config = RLConfig(method="lora", seed=0, max_steps=steps, save_steps=10_000, validate_every=0, sampler=sampler)
        started = time.perf_counter()
        with PeakMemory() as memory:
            result = train_rl("", tasks, out, config, lambda jobs: verify_many(jobs), GroundingConfig(),
                              lambda e: lengths.append(e["completions/mean_length"]) if "loss" in e else None,
                              resume=False)
        wall = time.perf_counter() - started
    finally:
        for name, method in originals.items():
            setattr(GRPOTrainer, name, method)
    sampling = totals["sampling"] if sampler == "transformers" else result.sampling_seconds + result.export_seconds
    # with a rollout function TRL does not call _generate_single_turn: sampling is the rollout's own time
    reference = totals["sample_and_score"] - sampling - totals["reward"]  # (and TRL's bookkeeping)
    per_step = {"sampling": sampling, "export (in sampling)": result.export_seconds,
                "reward (sandbox)": totals["reward"], "reference logps": reference, "policy logps": totals["logps"] - reference,
                "rest of the step": totals["step"] - totals["sample_and_score"] - (totals["logps"] - reference)}
    return {"sampler": result.sampler, "steps": result.steps, "wall_s": round(wall, 1),
            "s_per_step": round(totals["step"] / steps, 1),
            "parts_s_per_step": {k: round(v / steps, 1) for k, v in per_step.items()},
            "peak_rss_gb": round(memory.peak / 2**30, 2),
            "sampled_tokens": result.completion_tokens, "mean_length": round(sum(lengths) / max(len(lengths), 1), 1),
            "tokens_per_s_overall": result.tokens_per_s, "steps_per_hour": result.steps_per_hour,
            "reward": [round(p.get("reward", 0.0), 3) for p in result.curve if "loss" in p]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--tasks", type=int, default=16, help="the first N trainable MBPP train tasks")
    parser.add_argument("--samplers", nargs="+", default=list(SAMPLERS), choices=SAMPLERS)
    args = parser.parse_args()

    from engine.datasets.held_out import trainable_mbpp
    from engine.evaluate.suite.base import benchmark_data_dir
    from engine.training.tasks import CodeTask

    tasks = [CodeTask.from_mbpp(t) for t in trainable_mbpp(benchmark_data_dir(None))[:args.tasks]]
    arms = {}
    with tempfile.TemporaryDirectory() as folder:
        for sampler in args.samplers:
            arms[sampler] = run_arm(sampler, args.steps, tasks, Path(folder) / sampler)
            print(json.dumps(arms[sampler]), flush=True)
    for name, arm in arms.items():
        parts = ", ".join(f"{k} {v}" for k, v in arm["parts_s_per_step"].items())
        print(f"{name}: {arm['s_per_step']} s/step ({parts}); mean length {arm['mean_length']} tokens; "
              f"peak RSS {arm['peak_rss_gb']} GB")
    if len(arms) == 2:
        ratio = arms["transformers"]["s_per_step"] / arms["llama.cpp"]["s_per_step"]
        sampling = arms["transformers"]["parts_s_per_step"]["sampling"] / arms["llama.cpp"]["parts_s_per_step"]["sampling"]
        print(f"llama.cpp sampler: {ratio:.2f}x faster a step, sampling {sampling:.2f}x faster (export included)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
