"""Code chat studies from a shell, without the web app.

    python -m engine.codechat study --model qwen2.5-coder-0.5b-instruct --limit 50 --out study.json
    python -m engine.codechat study --kinds tests none --turns 4     # no feedback model needed

The student is evaluated at full precision (a quantised GGUF through its checked f16 copy, as the
benchmark suite does); the feedback model that writes `hint`s is a tool, served as it is packaged
(default: Qwen2.5-Coder-0.5B-Instruct), or any OpenAI-compatible endpoint (--feedback-url).
Progress goes to stderr, the per-turn table to stderr at the end, the whole result (settings,
models, summary, every transcript) to --out or stdout.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from engine.codechat.dialog_study import StudyConfig, run_study, study_tasks, table
from engine.codechat.feedback import KINDS
from engine.config import ConfigError
from engine.evaluate.suite.base import benchmark_data_dir

DEFAULT_FEEDBACK_MODEL = "qwen2.5-coder-0.5b-instruct"


def _feedback_model(args, student):
    if "hint" not in args.kinds:
        return None
    from engine.lm.loading import load_model
    from engine.lm.openai_endpoint import Endpoint, EndpointModel

    if args.feedback_url:
        return EndpointModel(Endpoint(args.feedback_url, args.feedback_endpoint_model,
                                      os.environ.get("AUTODIDACT_TEACHER_KEY", "")))
    if args.feedback_model == args.model and not args.quantized:
        return student  # one model answers and writes the hints (it never sees its own hint prompt twice)
    return load_model(args.feedback_model, "auto")


def study_main(argv) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.codechat study",
                                     description="Replay the MBPP dialog study with simulated feedback.")
    parser.add_argument("--model", default="", help="the student: HF id, checkpoint, .gguf or packaged name")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--quantized", action="store_true", help="serve a quantised student as it is")
    parser.add_argument("--feedback-model", default=DEFAULT_FEEDBACK_MODEL, help="writes the `hint` feedback")
    parser.add_argument("--feedback-url", default="", help="an OpenAI-compatible endpoint writes the hints instead")
    parser.add_argument("--feedback-endpoint-model", default="", help="the model name that endpoint serves")
    parser.add_argument("--data", default="", help="benchmark data folder (default: ../shared/data)")
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    defaults = StudyConfig()
    parser.add_argument("--turns", type=int, default=defaults.turns)
    parser.add_argument("--split", default=defaults.split)
    parser.add_argument("--limit", type=int, default=0, help="the first N tasks of the split")
    parser.add_argument("--max-tokens", type=int, default=defaults.max_tokens)
    parser.add_argument("--temperature", type=float, default=defaults.temperature, help="the first attempt")
    parser.add_argument("--repair-temperature", type=float, default=defaults.repair_temperature)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--timeout", type=float, default=defaults.timeout_s, dest="timeout_s")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    try:
        config = StudyConfig.from_known(vars(args)).check()
    except ConfigError as exc:
        parser.error(str(exc))
    try:
        tasks = study_tasks(benchmark_data_dir(args.data or None), config.split, config.limit)
    except FileNotFoundError as exc:
        parser.error(str(exc))
    from engine.lm.loading import load_full_precision, load_model
    from engine.sandbox import verify_many

    student = (load_model(args.model, args.backend) if args.quantized
               else load_full_precision(args.model, args.backend))
    say = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731
    say(f"student {student.name} ({student.backend}, {student.quantization}) loaded in {student.load_seconds:.1f} s")
    writer = _feedback_model(args, student)
    result = run_study(student, tasks, config, lambda jobs: verify_many(jobs), writer, progress=say)
    result["student"] = {"name": student.name, "backend": student.backend, "quantization": student.quantization,
                         "spec": args.model}
    result["feedback_model"] = None if writer is None else {
        "name": writer.name, "backend": getattr(writer, "backend", "endpoint"),
        "quantization": getattr(writer, "quantization", "?")}
    text = json.dumps(result)
    if args.out:
        args.out.write_text(text)
    else:
        print(text)
    say(table(result) + f"\nhints rejected: {result['hint_rejections']}; {result['tokens']} tokens in "
                        f"{result['seconds']} s")
    return 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["study"]:
        return study_main(argv[1:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
