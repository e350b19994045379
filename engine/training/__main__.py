"""Fine-tune from the command line, without the web app.

    python -m engine.training --base "" --data pairs.jsonl --out var/rounds/1 --method lora --epochs 2
    python -m engine.training rl --base "" --out var/rl/1 --limit 100 --max-steps 50   # GRPO on MBPP train
    python -m engine.training distill --data kept.jsonl --out var/distill/1 --structure-weight 0.5
    python -m engine.training interpolate --base "" --model var/rounds/1/model --alpha 0.5 --out var/wise/0.5

`--data` is JSON lines with "text" (P3 f/g/assert format) or "messages" (chat format) per line.
Progress is printed as JSON lines on stderr; rerunning the same command resumes from the last
whole checkpoint in `--out`.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from engine.training.packing import TrainingText
from engine.training.sft import SFTConfig, TrainingError, train_sft


def read_examples(path: str | Path) -> list[TrainingText]:
    examples = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise ValueError(f"{path}:{number}: not JSON ({exc})") from exc
            if not isinstance(row, dict) or not (isinstance(row.get("text"), str) or isinstance(row.get("messages"), list)):
                raise ValueError(f"{path}:{number}: each line needs a 'text' string or a 'messages' list")
            examples.append(TrainingText(row.get("text", ""), tuple(row.get("messages") or ()), f"{path}:{number}"))
    return examples


def _progress(event: dict) -> None:
    print(json.dumps(event), file=sys.stderr, flush=True)


def _run(train) -> int:
    """`train()`'s result as JSON on stdout, or why it could not train."""
    try:
        result = train()
    except (ValueError, TrainingError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result.as_dict()))
    return 0


def rl_main(argv) -> int:
    """GRPO (engine/training/rl.py) on MBPP train tasks (601-974, less those MBPP+ holds), rewarded by
    the grounding function."""
    from engine.datasets.held_out import trainable_mbpp
    from engine.evaluate.suite.base import benchmark_data_dir
    from engine.training.grounding import GroundingConfig
    from engine.training.rl import RLConfig, train_rl
    from engine.training.tasks import CodeTask

    parser = argparse.ArgumentParser(prog="python -m engine.training rl", description=rl_main.__doc__)
    parser.add_argument("--base", default="", help="HF id, local checkpoint or .gguf ('' = packaged default)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--data", default="", help="benchmark data folder (default: ../shared/data)")
    parser.add_argument("--limit", type=int, default=0, help="the first N train tasks (0: all 248)")
    parser.add_argument("--no-resume", action="store_true")
    for config_class in (RLConfig, GroundingConfig):
        for name, value in config_class().as_dict().items():
            parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    args = parser.parse_args(argv)

    def train():
        config = RLConfig.from_known(vars(args))
        grounding = GroundingConfig.from_known(vars(args)).check()
        tasks = [CodeTask.from_mbpp(t) for t in trainable_mbpp(benchmark_data_dir(args.data or None))[:args.limit or None]]
        validation, verify = _validation(args.data)
        return train_rl(args.base, tasks, args.out, config, verify, grounding,
                        progress=_progress, resume=not args.no_resume, validation=validation)

    return _run(train)


def supervised_main(argv, prog: str, config_class, train) -> int:
    """SFT, or distillation of kept teacher traces (engine/distill: chat JSON lines)."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="", help="HF id, local checkpoint or .gguf ('' = packaged default)")
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--no-resume", action="store_true")
    parser.add_argument("--benchmark-data", default="",
                        help="benchmark data folder for --validate-every's MBPP validation tasks (default: ../shared/data)")
    defaults = config_class()
    for name, value in defaults.as_dict().items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    args = parser.parse_args(argv)
    settings = {name: getattr(args, name) for name in defaults.as_dict()}

    def run():
        config = config_class(**settings)
        validation, verify = _validation(args.benchmark_data) if config.validate_every else ((), None)
        return train(args.base, read_examples(args.data), args.out, config, progress=_progress,
                     resume=not args.no_resume, validation=validation, verify=verify)

    return _run(run)


def _validation(data: str) -> tuple[list, object]:
    """MBPP validation (511-600) as held-out tasks, and the sandbox that scores answers to them."""
    from engine.datasets.mbpp import mbpp_validation
    from engine.evaluate.suite.base import benchmark_data_dir
    from engine.sandbox import verify_many
    from engine.training.tasks import CodeTask

    tasks = [CodeTask.from_mbpp(t) for t in mbpp_validation(benchmark_data_dir(data or None))]
    return tasks, lambda jobs: verify_many(jobs)


def interpolate_main(argv) -> int:
    """A checkpoint between a starting model and a model trained from it, base + α·(model − base)
    (engine/training/interpolation.py), with its checked GGUF copy where the base is a GGUF."""
    from engine.training.interpolation import write_interpolated

    parser = argparse.ArgumentParser(prog="python -m engine.training interpolate", description=interpolate_main.__doc__)
    parser.add_argument("--base", default="", help="the starting model ('' = packaged default)")
    parser.add_argument("--model", required=True, help="a checkpoint trained from --base")
    parser.add_argument("--alpha", type=float, required=True, help="0 < α ≤ 4 (1: --model itself; above 1 extrapolates)")
    parser.add_argument("--out", required=True, help="an empty or new folder")
    args = parser.parse_args(argv)
    try:
        record = write_interpolated(args.base, args.model, args.alpha, args.out)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(record))
    return 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["interpolate"]:
        return interpolate_main(argv[1:])
    if argv[:1] == ["rl"]:
        return rl_main(argv[1:])
    if argv[:1] == ["distill"]:
        from engine.training.distill import DistillConfig, train_distill

        return supervised_main(argv[1:], "python -m engine.training distill", DistillConfig, train_distill)
    return supervised_main(argv, "python -m engine.training", SFTConfig, train_sft)


if __name__ == "__main__":
    sys.exit(main())
