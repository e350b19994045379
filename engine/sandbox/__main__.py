"""Verify jobs from the command line: JSON lines in, one JSON-line verdict per job out.

    python -m engine.sandbox jobs.jsonl > verdicts.jsonl
    echo '{"id": "p1", "kind": "puzzle", "sat": "def sat(x: int): return x > 2", "sol": "def sol(): return 3"}' \\
        | python -m engine.sandbox

A line that is not a JSON object gets an `error` verdict naming the line, and the run goes
on. Verdicts come out as jobs finish (use the `id` to match them); a job without an `id`
is named `line-N`. Exit status: 0 if every job passed, 1 if any did not, 2 on bad usage.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator

from engine.sandbox import Limits, Sandbox, Verdict
from engine.sandbox.jobs import NOT_RUN
from engine.sandbox.verdict import ERROR, short


def read_jobs(lines, bad: list[Verdict]) -> Iterator[dict]:
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            job = json.loads(line)
        except ValueError as exc:
            bad.append(Verdict(f"line-{number}", ERROR, f"line {number} is not valid JSON: {short(exc, 200)}",
                               isolation=NOT_RUN))
            continue
        if not isinstance(job, dict):
            bad.append(Verdict(f"line-{number}", ERROR, f"line {number} is not a JSON object", isolation=NOT_RUN))
            continue
        job.setdefault("id", f"line-{number}")
        yield job


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.sandbox", description=__doc__.split("\n")[0])
    parser.add_argument("file", nargs="?", help="JSON-lines jobs (default: standard input)")
    parser.add_argument("--workers", type=int, default=None, help="sandbox workers (default: cores)")
    parser.add_argument("--timeout", type=float, default=Limits.wall_s, help="seconds per run")
    parser.add_argument("--memory-mb", type=int, default=Limits.memory_mb)
    parser.add_argument("--level", default="auto", choices=["auto", "namespaces+uid", "namespaces", "rlimits"])
    parser.add_argument("--isolation", action="store_true", help="print the isolation report and exit")
    args = parser.parse_args(argv)

    limits = Limits(wall_s=args.timeout, memory_mb=args.memory_mb)
    with Sandbox(workers=args.workers, limits=limits, level=args.level) as sandbox:
        if args.isolation:
            print(json.dumps(sandbox.isolation, indent=2))
            return 0
        try:
            source = open(args.file, encoding="utf-8") if args.file else sys.stdin
        except OSError as exc:
            parser.error(f"cannot read {args.file}: {exc.strerror}")
        bad: list[Verdict] = []
        all_passed = True
        with source:
            jobs = list(read_jobs(source, bad))
        for verdict in [*bad, *sandbox.verify_many(jobs)]:
            all_passed &= verdict.passed
            print(json.dumps(verdict.as_dict(), ensure_ascii=False), flush=True)
    return 0 if all_passed else 1


if __name__ == "__main__":
    sys.exit(main())
