"""What int8 inference costs in answer quality, next to what it gains in speed, in one run.

Both precisions of the default model answer the same sanitized-MBPP test tasks greedily, with the
chat's own task prompt; the sandbox runs each answer's code against the task's asserts. Prints
pass rates, how many answers differ, and the wall time of each.

    python benchmarks/quantization_quality.py [--tasks 60] [--tokens 256] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.codechat.checks import entry_point_of, job_for, reply_code  # noqa: E402
from engine.codechat.prompts import task_prompt  # noqa: E402
from engine.lm.generation import SamplingParams  # noqa: E402
from engine.lm.transformers_backend import TransformersModel  # noqa: E402
from engine.sandbox import verify_many  # noqa: E402

DATA = Path(os.environ.get("AUTODIDACT_BENCHMARK_DATA") or ROOT.parent / "shared" / "data")


def load_tasks(limit: int) -> list[dict]:
    tasks = json.loads((DATA / "mbpp" / "sanitized-mbpp.json").read_text())
    test_split = [t for t in tasks if 11 <= t["task_id"] <= 510]  # MBPP's test split: evaluation only
    return test_split[:limit]


def run(quantize: str, tasks: list[dict], tokens: int) -> dict:
    model = TransformersModel.load("", quantize=quantize)
    prompts = [[{"role": "user", "content": task_prompt(t["prompt"], t["test_list"])}] for t in tasks]
    started = time.perf_counter()
    replies = [group[0] for group in model.sample_many(prompts, 1, SamplingParams(max_new_tokens=tokens))]
    generate_s = time.perf_counter() - started
    jobs = []
    for task, reply in zip(tasks, replies):
        code = reply_code("task", reply.text, entry_point_of(task["test_list"])) or "pass\n"
        setup = "\n".join(task.get("test_imports") or [])
        jobs.append({**job_for("task", setup + "\n" + code, tests=task["test_list"]), "id": str(task["task_id"])})
    verdicts = {v.id: v for v in verify_many(jobs)}
    passed = [verdicts[str(t["task_id"])].passed for t in tasks]
    return {"quantize": quantize, "passed": sum(passed), "tasks": len(tasks), "generate_s": round(generate_s, 1),
            "tokens": sum(r.tokens for r in replies), "texts": [r.text for r in replies], "per_task": passed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=60)
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--json")
    args = parser.parse_args()
    tasks = load_tasks(args.tasks)
    fp32, int8 = run("none", tasks, args.tokens), run("int8", tasks, args.tokens)
    same = sum(a == b for a, b in zip(fp32["texts"], int8["texts"]))
    flips = sum(a != b for a, b in zip(fp32["per_task"], int8["per_task"]))
    print(f"sanitized MBPP test tasks: {len(tasks)}, greedy, {args.tokens} new tokens at most")
    print("| precision | passed | pass rate | generation s | tokens/s (batched) |")
    print("|---|---|---|---|---|")
    for r in (fp32, int8):
        print(f"| {r['quantize']} | {r['passed']}/{r['tasks']} | {r['passed'] / r['tasks']:.1%} | {r['generate_s']} "
              f"| {r['tokens'] / r['generate_s']:.0f} |")
    print(f"identical answers: {same}/{len(tasks)}; tasks whose verdict changed: {flips}")
    if args.json:
        summary = {k: {kk: vv for kk, vv in r.items() if kk != "texts"} for k, r in (("fp32", fp32), ("int8", int8))}
        Path(args.json).write_text(json.dumps({**summary, "identical": same, "flipped": flips}, indent=2))


if __name__ == "__main__":
    main()
