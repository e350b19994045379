"""fp32 against bf16 mixed precision for a training round's steps on this host: tokens/s of each and
the loss each reaches, on the same data, seed and steps, runs alternated so that a host whose speed
drifts affects both. `precision="auto"` picks bf16 only where the device multiplies bf16 natively
(engine/training/precision.py); this script is how that choice was measured.

    python benchmarks/training_precision.py                      # 10 steps of 8 x 512 tokens, 2 pairs
    python benchmarks/training_precision.py --steps 2 --batch-size 1 --pairs 1   # a quick look

Data: the MBPP train programs (601-974 less those MBPP+ holds), as benchmarks/gpu_check.sh trains.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.datasets.held_out import trainable_mbpp  # noqa: E402
from engine.evaluate.suite.base import benchmark_data_dir  # noqa: E402
from engine.training.packing import TrainingText  # noqa: E402
from engine.training.precision import native_bf16  # noqa: E402
from engine.training.sft import SFTConfig, train_sft  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default="", help="model to train ('' = the packaged default)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--block-size", type=int, default=512)
    parser.add_argument("--pairs", type=int, default=2, help="fp32 then bf16, this many times")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--json", default="", help="also write the figures here")
    args = parser.parse_args(argv)

    examples = [TrainingText(f"# {task.text}\n{task.code}\n") for task in trainable_mbpp(benchmark_data_dir(None))]
    print(f"{len(examples)} examples; {args.device} multiplies bf16 natively: {native_bf16(args.device)}", flush=True)
    runs = []
    with tempfile.TemporaryDirectory() as scratch:
        for pair in range(args.pairs):
            for precision in ("fp32", "bf16"):
                config = SFTConfig(max_steps=args.steps, batch_size=args.batch_size, block_size=args.block_size,
                                   learning_rate=1e-4, warmup_steps=2, save_steps=10_000, device=args.device,
                                   precision=precision)
                result = train_sft(args.base, examples, Path(scratch) / f"{precision}-{pair}", config, resume=False)
                runs.append({"pair": pair, "precision": result.precision, "tokens_per_s": result.tokens_per_s,
                             "seconds": result.seconds, "losses": [loss for _, loss in result.loss_curve]})
                print(f"pair {pair} {precision}: {result.tokens_per_s} tokens/s, loss "
                      f"{runs[-1]['losses'][0]} -> {runs[-1]['losses'][-1]}", flush=True)
    print()
    print("| pair | fp32 tokens/s | bf16 tokens/s | bf16 / fp32 | final loss fp32 / bf16 | largest loss gap over the steps |")
    print("|---|---|---|---|---|---|")
    for pair in range(args.pairs):
        fp32, bf16 = (next(r for r in runs if r["pair"] == pair and r["precision"] == p) for p in ("fp32", "bf16"))
        gap = max(abs(a - b) for a, b in zip(fp32["losses"], bf16["losses"]))
        print(f"| {pair} | {fp32['tokens_per_s']} | {bf16['tokens_per_s']} | "
              f"{bf16['tokens_per_s'] / fp32['tokens_per_s']:.2f}× | {fp32['losses'][-1]} / {bf16['losses'][-1]} | "
              f"{gap:.4f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"settings": vars(args), "runs": runs}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
