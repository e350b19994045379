"""Fine-tune from the command line, without the web app.

    python -m engine.training --base "" --data pairs.jsonl --out var/rounds/1 --method lora --epochs 2

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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.training", description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="", help="HF id, local checkpoint or .gguf ('' = packaged default)")
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--no-resume", action="store_true")
    defaults = SFTConfig()
    for name, value in defaults.as_dict().items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    args = parser.parse_args(argv)
    settings = {name: getattr(args, name) for name in defaults.as_dict()}
    try:
        config = SFTConfig(**settings)
        examples = read_examples(args.data)
        result = train_sft(args.base, examples, args.out, config,
                           progress=lambda event: print(json.dumps(event), file=sys.stderr, flush=True),
                           resume=not args.no_resume)
    except (ValueError, TrainingError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result.as_dict()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
