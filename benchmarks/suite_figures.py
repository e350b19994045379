"""One model on several suite benchmarks, one after another, then one table of the results.

Each benchmark runs through `python -m engine.evaluate run … --out DIR/NAME.json`, so an
interrupted sweep resumes where it stopped (a finished file is kept, a partial one is resumed).
The table names every setting a reader needs to compare figures: prompt, n, T, top-k/top-p,
max tokens, limit, seed, backend and weight type.

    python benchmarks/suite_figures.py --model qwen2.5-coder-0.5b-instruct --out-dir runs/qwen05 \
        humaneval-plus mbpp-plus
    python benchmarks/suite_figures.py --table runs/qwen05      # only print the table
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_one(model: str, name: str, out_dir: Path, extra: list[str]) -> None:
    out = out_dir / f"{name}.json"
    command = [sys.executable, "-m", "engine.evaluate", "run", name, "--model", model, "--out", str(out), *extra]
    if out.exists():
        if "pass_at_k" in json.loads(out.read_text()):
            print(f"{name}: done already ({out})", file=sys.stderr)
            return
        command += ["--resume", str(out)]
    subprocess.run(command, cwd=ROOT, check=True)


def table(out_dir: Path) -> str:
    lines = ["| benchmark | prompt | tasks | n | pass@1 | 95% CI | pass@10 | parts (pass@1) | T / top-k / top-p "
             "| max tok | model (backend, weights) | s | tok/s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for path in sorted(out_dir.glob("*.json")):
        result = json.loads(path.read_text())
        if "pass_at_k" not in result:
            continue
        s, m = result["settings"], result.get("model", {})
        parts = ", ".join(f"{k} {v.get('1', 0) * 100:.1f}" for k, v in result.get("parts", {}).items())
        ci = result.get("interval", {}).get("1", [0, 0])
        scores = result["pass_at_k"]
        at10 = f"{scores['10'] * 100:.1f}" if "10" in scores else "–"
        lines.append(
            f"| {result['benchmark']['benchmark']} | {s['prompt']} | {result['done']} | {s['n']} "
            f"| {scores.get('1', 0) * 100:.1f} | {ci[0] * 100:.1f}–{ci[1] * 100:.1f} | {at10} | {parts or '–'} "
            f"| {s['temperature']} / {s['top_k']} / {s['top_p']} | {s['max_tokens']} "
            f"| {m.get('name', '?')} ({m.get('backend', '?')}, {m.get('quantization', '?')}) "
            f"| {result['seconds']:.0f} | {result.get('tokens_per_s', 0)} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("benchmarks", nargs="*")
    parser.add_argument("--model", default="")
    parser.add_argument("--out-dir", type=Path)
    parser.add_argument("--table", type=Path, help="print the table of a finished sweep and stop")
    args, extra = parser.parse_known_args(argv)
    if args.table:
        print(table(args.table))
        return 0
    if not args.out_dir or not args.benchmarks:
        parser.error("give --out-dir and at least one benchmark (or --table DIR)")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for name in args.benchmarks:
        run_one(args.model, name, args.out_dir, extra)
    print(table(args.out_dir))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
