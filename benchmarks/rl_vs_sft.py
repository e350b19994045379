"""RL from execution feedback against SFT on the same tasks and the same wall-clock budget.

Both arms start from the same base and learn from the same MBPP train tasks (601-974, less those
MBPP+ holds): SFT on each task's reference program as the chat reply, RL (GRPO) on rewards the
grounding function gives each sampled program in the sandbox. Both stop early on MBPP validation
and keep their best model on it (the same 30 tasks, greedy answers, patience 2). Each arm trains
for at most `--minutes` (the trainers' `max_minutes`: the first step past it is the last). Then the
base and both trained models answer the MBPP test split with the benchmark suite at full precision,
and the table gives the RLCF paper's three rates (samples that compile, run without an error, pass
every test), pass@1 and pass@k, and each arm's steps/h.

Every stage writes to `--out` and resumes: rerun the same command after a stop.

    python benchmarks/rl_vs_sft.py --out var/rl-vs-sft --minutes 120           # the issue's protocol
    python benchmarks/rl_vs_sft.py --out /tmp/smoke --minutes 1 --tasks 8 --eval-limit 5 --n 2 --k 1 2
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ARMS = ("base", "sft", "rl")


def sft_examples(tasks) -> list:
    """Each task's prompt (the one RL samples from) answered with its reference program."""
    from engine.training.packing import TrainingText

    return [TrainingText(messages=(*task.prompt(), {"role": "assistant", "content": f"```python\n{task.reference}\n```"}),
                         source=task.source) for task in tasks]


def train_arm(arm: str, args, tasks, validation, out: Path) -> dict:
    """The arm's training record (its result as the trainer returns it), trained or resumed."""
    from engine.sandbox import verify_many
    from engine.training.grounding import GroundingConfig
    from engine.training.rl import RLConfig, train_rl
    from engine.training.sft import SFTConfig, train_sft

    def progress(event):
        print(json.dumps({"arm": arm, **event}), file=sys.stderr, flush=True)

    common = {"method": args.method, "seed": args.seed, "max_minutes": args.minutes, "device": args.device}
    if arm == "sft":
        config = SFTConfig(**common, epochs=1000.0, learning_rate=args.sft_learning_rate,
                           validate_every=args.sft_validate_every)
        result = train_sft(args.base, sft_examples(tasks), out / "sft", config, progress,
                           validation=validation, verify=lambda jobs: verify_many(jobs))
    else:
        config = RLConfig(**common, max_steps=1_000_000, learning_rate=args.rl_learning_rate)
        result = train_rl(args.base, tasks, out / "rl", config, lambda jobs: verify_many(jobs), GroundingConfig(),
                          progress, validation=validation)
    record = {"config": config.as_dict(), "result": result.as_dict()}
    return record


def evaluate_arm(spec: str, args, path: Path) -> dict:
    """MBPP test with the suite, at full precision; resumes from the rows already in `path`."""
    from engine.evaluate.suite.registry import get_benchmark
    from engine.evaluate.suite.runner import RunSettings, run_benchmark
    from engine.lm.loading import load_full_precision
    from engine.sandbox import verify_many

    benchmark = get_benchmark("mbpp", args.data or None, "instruct")
    settings = RunSettings(n=args.n, temperature=args.temperature, top_p=args.top_p, max_tokens=args.max_tokens,
                           seed=args.seed, limit=args.eval_limit, ks=tuple(args.k)).resolved(benchmark)
    done = {}
    if path.exists():
        earlier = json.loads(path.read_text())
        if earlier.get("settings") == json.loads(json.dumps(settings.as_dict())):
            done = {row["task_id"]: row for row in earlier.get("rows", [])}
    model = load_full_precision(spec, args.backend)
    info = {"name": model.name, "backend": model.backend, "quantization": model.quantization, "spec": spec}
    rows = list(done.values())

    def keep(row):
        rows.append(row)
        path.write_text(json.dumps({"settings": settings.as_dict(), "model": info, "rows": rows}))

    try:
        result = run_benchmark(benchmark, model, settings, lambda jobs: verify_many(jobs), info, done, on_task=keep)
    finally:
        getattr(model, "close", lambda: None)()  # the next arm trains in this process
    path.write_text(json.dumps(result.as_dict()))
    return result.as_dict()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--base", default="", help="the starting model ('' = packaged default)")
    parser.add_argument("--data", default="", help="benchmark data folder (default: ../shared/data)")
    parser.add_argument("--minutes", type=float, default=120.0, help="wall-clock training budget of each arm")
    parser.add_argument("--tasks", type=int, default=0, help="the first N trainable MBPP train tasks (0: all)")
    parser.add_argument("--method", default="lora", help="full or lora, for both arms")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--sft-learning-rate", type=float, default=5e-5)
    parser.add_argument("--rl-learning-rate", type=float, default=1e-5)
    parser.add_argument("--sft-validate-every", type=int, default=40,
                        help="SFT steps between validations (RL validates every 10 of its ~4x longer steps)")
    parser.add_argument("--backend", default="auto", help="evaluation backend")
    parser.add_argument("--eval-limit", type=int, default=0, help="the first N MBPP test tasks (0: all 500)")
    parser.add_argument("--n", type=int, default=10, help="samples per test task")
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--top-p", type=float, default=0.95)
    parser.add_argument("--max-tokens", type=int, default=512)
    parser.add_argument("--k", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS)
    args = parser.parse_args()

    from engine.datasets.held_out import trainable_mbpp
    from engine.datasets.mbpp import mbpp_validation
    from engine.evaluate.suite.base import benchmark_data_dir
    from engine.training.tasks import CodeTask

    data = benchmark_data_dir(args.data or None)
    tasks = [CodeTask.from_mbpp(t) for t in trainable_mbpp(data)[:args.tasks or None]]
    validation = [CodeTask.from_mbpp(t) for t in mbpp_validation(data)]
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"tasks": len(tasks), "budget_minutes": args.minutes, "arms": {}}
    for arm in args.arms:
        entry: dict = {}
        if arm != "base":
            record_path = args.out / f"train-{arm}.json"
            if not record_path.exists():
                started = time.perf_counter()
                record = train_arm(arm, args, tasks, validation, args.out)
                record["wall_s"] = round(time.perf_counter() - started, 1)
                record_path.write_text(json.dumps(record, indent=1))
            entry["training"] = json.loads(record_path.read_text())
        spec = args.base if arm == "base" else str(args.out / arm / "model")
        entry["evaluation"] = {k: v for k, v in evaluate_arm(spec, args, args.out / f"eval-{arm}.json").items()
                               if k != "rows"}
        report["arms"][arm] = entry
        (args.out / "report.json").write_text(json.dumps(report, indent=1))

    ks = [str(k) for k in args.k]
    print(f"{len(tasks)} MBPP train tasks, budget {args.minutes:g} min per arm, MBPP test "
          f"(n={args.n}, T={args.temperature}, top-p {args.top_p}, seed {args.seed})")
    print(f"{'arm':<6}{'steps':>7}{'best':>6}{'train s':>9}{'steps/h':>9}{'tok/s':>8}{'compile':>9}{'run':>7}{'pass':>7}"
          + "".join(f"{'pass@' + k:>9}" for k in ks) + "  model")
    for arm, entry in report["arms"].items():
        result = entry.get("training", {}).get("result", {})
        steps, seconds = result.get("steps", 0), result.get("seconds") or entry.get("training", {}).get("wall_s", 0)
        # a resumed arm's seconds are its last process's: the trainer's own rate counts that process's steps
        rate = result.get("steps_per_hour") or (steps / seconds * 3600 if seconds else 0)
        evaluation = entry["evaluation"]
        rates = evaluation.get("rates", {})
        best = result.get("best_step")  # the step validation kept ("-": not validated)
        print(f"{arm:<6}{steps:>7}{'-' if best is None else best:>6}{seconds:>9.0f}{rate:>9.0f}"
              f"{result.get('tokens_per_s') or 0:>8.0f}"
              f"{rates.get('compiles', 0):>9.3f}{rates.get('runs', 0):>7.3f}{rates.get('passes', 0):>7.3f}"
              + "".join(f"{evaluation['pass_at_k'].get(k, 0):>9.3f}" for k in ks)
              + f"  {evaluation['model']['name']} ({evaluation['model']['backend']}, {evaluation['model']['quantization']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
