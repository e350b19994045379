"""`python -m engine.evaluate run NAME --model …`, `… references NAME` and `… rescore FILE`: the
suite from a shell.

`run` prints progress on stderr and the result (every task's samples and verdicts) as JSON on
stdout or into --out; --resume takes an earlier, interrupted --out and runs only what it lacks.
`references` checks the benchmark's own reference solutions and lists the ones that fail.
`rescore` checks an earlier run's samples again with today's harness (no generation).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from engine.config import ConfigError
from engine.evaluate.suite.registry import get_benchmark, names
from engine.evaluate.suite.runner import RunSettings, check_references, describe_model, rescore, run_benchmark


def _verify():
    from engine.sandbox import verify_many

    return lambda jobs: verify_many(jobs)


def run_main(argv) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.evaluate run", description="Run one benchmark.")
    parser.add_argument("benchmark", choices=names())
    parser.add_argument("--model", default="", help="HF id, local checkpoint, .gguf or packaged name ('' = default)")
    parser.add_argument("--backend", default="auto", help="auto, transformers or llama.cpp")
    parser.add_argument("--quantized", action="store_true",
                        help="serve a quantised GGUF as it is (default: its full-precision f16 copy)")
    parser.add_argument("--copies", default="", help="where f16 copies of quantised models are kept")
    parser.add_argument("--data", default="", help="benchmark data folder (default: ../shared/data)")
    parser.add_argument("--prompt", default="")
    parser.add_argument("--n", type=int, default=0, help="samples per task (default: the benchmark's)")
    parser.add_argument("--temperature", type=float, default=-1.0)
    parser.add_argument("--top-k", type=int, default=-1)
    parser.add_argument("--top-p", type=float, default=0.0)
    parser.add_argument("--max-tokens", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=0.0, dest="timeout_s")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=0, help="only the first N tasks")
    parser.add_argument("--k", type=int, nargs="+", default=[1, 10, 100], dest="ks")
    parser.add_argument("--out", type=Path, help="write the result here (rewritten after every chunk)")
    parser.add_argument("--resume", type=Path, help="an earlier --out: its finished tasks are kept")
    args = parser.parse_args(argv)
    try:
        benchmark = get_benchmark(args.benchmark, args.data or None, args.prompt)
        settings = RunSettings.from_known(vars(args)).resolved(benchmark)
    except (ConfigError, ValueError) as exc:
        parser.error(str(exc))
    done = {}
    if args.resume:
        earlier = json.loads(args.resume.read_text())
        if _but_limit(earlier.get("settings")) != _but_limit(json.loads(json.dumps(settings.as_dict()))):
            parser.error(f"{args.resume} was run with other settings (only --limit may differ): {earlier.get('settings')}")
        # A task's row does not depend on the limit, so a run of the first 150 tasks goes on to all of them.
        wanted = {task.task_id for task in benchmark.tasks()[:settings.limit or None]}
        done = {row["task_id"]: row for row in earlier.get("rows", []) if row["task_id"] in wanted}
    from engine.lm.loading import load_full_precision, load_model

    if args.quantized:
        model = load_model(args.model, args.backend)
    else:
        model = load_full_precision(args.model, args.backend, args.copies or None)
    print(f"{model.name} ({model.backend}, {model.quantization}) loaded in {model.load_seconds:.1f} s", file=sys.stderr)
    info = {**describe_model(model), "spec": args.model}

    rows = list(done.values())

    def keep(row):
        rows.append(row)

    def progress(done_tasks, total):
        print(f"{done_tasks}/{total}", file=sys.stderr, flush=True)
        if args.out:  # an interrupted run leaves what it finished, for --resume
            args.out.write_text(json.dumps({"settings": settings.as_dict(), "model": info, "rows": rows}))

    result = run_benchmark(benchmark, model, settings, _verify(), info, done, on_task=keep, progress=progress)
    text = json.dumps(result.as_dict())
    if args.out:
        args.out.write_text(text)
    else:
        print(text)
    parts = " ".join(f"{name} {scores}" for name, scores in result.parts.items())
    print(f"{benchmark.title} [{settings.prompt}] pass@k {result.pass_at_k} 95% CI {result.interval} {parts} "
          f"samples that compile / run / pass {result.rates} "
          f"({result.solved}/{result.done} tasks, {result.seconds} s)", file=sys.stderr)
    return 0


def _but_limit(settings: dict | None) -> dict:
    return {name: value for name, value in (settings or {}).items() if name != "limit"}


def references_main(argv) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.evaluate references",
                                     description="Check a benchmark's reference solutions with its own checks.")
    parser.add_argument("benchmark", choices=names())
    parser.add_argument("--data", default="")
    parser.add_argument("--limit", type=int, default=0)
    args = parser.parse_args(argv)
    benchmark = get_benchmark(args.benchmark, args.data or None)
    failing = check_references(benchmark, _verify(), limit=args.limit)
    print(json.dumps({"benchmark": benchmark.name, "tasks": len(benchmark.tasks()[:args.limit or None]),
                      "failing": failing}))
    return 1 if failing else 0


def rescore_main(argv) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.evaluate rescore",
                                     description="Check an earlier run's samples again with today's harness.")
    parser.add_argument("result", type=Path, help="a run's --out file")
    parser.add_argument("--data", default="")
    parser.add_argument("--out", type=Path, help="where to write the rescored result (default: stdout)")
    args = parser.parse_args(argv)
    result = json.loads(args.result.read_text())
    described = result["benchmark"]
    benchmark = get_benchmark(described["benchmark"], args.data or None, described["prompt"])
    new = rescore(benchmark, result, _verify())
    text = json.dumps(new)
    if args.out:
        args.out.write_text(text)
    else:
        print(text)
    print(f"{benchmark.title} [{described['prompt']}] pass@k {result.get('pass_at_k')} -> {new['pass_at_k']}; "
          f"parts {result.get('parts')} -> {new['parts']}", file=sys.stderr)
    return 0
