"""Teacher traces from the command line, without the web app.

    python -m engine.distill traces --teacher qwen2.5-coder-0.5b-instruct --limit 100 --samples 4 --out traces.jsonl
    python -m engine.distill traces --teacher-url http://127.0.0.1:8080/v1 --sources mbpp p3 --out traces.jsonl

Every trace (kept or not) goes to --out as JSON lines; --export writes the kept ones in the chat
format the `distill` training method reads (`python -m engine.training distill --data ...`).
Teacher answers are cached by content in --cache (default: beside --out), so running the same
command again after a stop asks the teacher only for what is missing.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from engine.config import ConfigError
from engine.distill.traces import TraceConfig, TraceError, student_messages, trace_tasks, write_traces
from engine.evaluate.suite.base import benchmark_data_dir


def _teacher(args):
    if args.teacher_url:
        from engine.lm.openai_endpoint import Endpoint, EndpointModel

        return EndpointModel(Endpoint(args.teacher_url, args.teacher_model,
                                      os.environ.get("AUTODIDACT_TEACHER_KEY", ""), parallel=args.parallel))
    from engine.lm.loading import load_model

    return load_model(args.teacher, "auto")


def traces_main(argv) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.distill traces", description="Write teacher traces.")
    parser.add_argument("--teacher", default="qwen2.5-coder-0.5b-instruct", help="packaged name, HF id or path")
    parser.add_argument("--teacher-url", default="", help="an OpenAI-compatible endpoint instead")
    parser.add_argument("--teacher-model", default="", help="the model name that endpoint serves")
    parser.add_argument("--parallel", type=int, default=4, help="requests in flight to the endpoint")
    parser.add_argument("--data", default="", help="benchmark data folder (default: ../shared/data)")
    parser.add_argument("--sources", nargs="+", default=["mbpp"], choices=["mbpp", "p3"])
    parser.add_argument("--limit", type=int, default=0, help="the first N tasks")
    parser.add_argument("--minutes", type=float, default=0.0,
                        help="start no batch after this many minutes (0: no budget); run again to go on")
    for name, value in TraceConfig().as_dict().items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--export", type=Path, help="the kept traces as chat JSON lines")
    parser.add_argument("--cache", type=Path, help="teacher answers by content (default: <out>.cache.jsonl)")
    args = parser.parse_args(argv)
    try:
        config = TraceConfig.from_known(vars(args)).check()
        tasks = trace_tasks(benchmark_data_dir(args.data or None), args.sources, args.limit)
    except (ConfigError, FileNotFoundError) as exc:
        parser.error(str(exc))
    from engine.distill.request_cache import CachedSampler
    from engine.sandbox import verify_many

    teacher = _teacher(args)
    cached = CachedSampler(teacher, args.cache or args.out.with_suffix(".cache.jsonl"))
    say = lambda event: print(json.dumps(event), file=sys.stderr, flush=True)  # noqa: E731
    try:
        run = write_traces(cached, tasks, config, lambda jobs: verify_many(jobs), progress=say,
                           teacher_name=teacher.name, max_minutes=args.minutes)
    except TraceError as exc:
        parser.error(str(exc))
    args.out.write_text("".join(json.dumps(t.as_dict(), ensure_ascii=False) + "\n" for t in run.traces))
    if args.export:
        args.export.write_text("".join(
            json.dumps({"messages": student_messages(t.prompt, t.reasoning, t.code), "source": t.source},
                       ensure_ascii=False) + "\n" for t in run.traces if t.kept))
    say({**run.summary(), "cache_hits": cached.hits, "asked_teacher": cached.asked,
         "teacher_backend": getattr(teacher, "backend", "?"), "teacher_quantization": getattr(teacher, "quantization", "?")})
    close = getattr(teacher, "close", None)
    if close:
        close()
    return 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["traces"]:
        return traces_main(argv[1:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
