"""Evaluate a model from the command line, without the web app.

    python -m engine.evaluate p3 --model var/rounds/1/model --samples 10 --subset 50
    python -m engine.evaluate humaneval --model ""          # greedy pass@1 on all 164 problems
    python -m engine.evaluate compare before.json after.json --k 10   # two saved results, paired
    python -m engine.evaluate run mbpp --model qwen2.5-coder-0.5b-instruct --limit 20   # the suite
    python -m engine.evaluate references humaneval-plus   # a benchmark's own solutions, checked
    python -m engine.evaluate rescore run.json --out run-rescored.json   # its samples, checked again

Prints one JSON object (per-problem rows included) on stdout, progress on stderr. `compare`
pairs two saved results of the same set task by task (engine.evaluate.paired) and prints its
summary: P3 results (`p3 … > file`) or the suite's (`run … --out file`), with the syntax and
data-flow match paired too where the benchmark reports them.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from engine.evaluate import paired
from engine.evaluate.humaneval_eval import PROMPTS, evaluate_humaneval, load_humaneval
from engine.evaluate.p3_eval import P3EvalConfig, evaluate_p3, held_out_puzzles
from engine.evaluate.structure import structure_by_task
from engine.lm.loading import load_full_precision, load_model
from engine.sandbox import verify_many
from engine.selfplay.solving_prompts import STYLES

DEFAULT_P3 = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "p3"


def _paired_rows(result: dict) -> tuple[str, list[dict], int, str]:
    """(the set it measured, its per-task rows as `paired` takes them, the default k, what a row is):
    a P3 result pairs puzzles at pass@10; a suite run (its benchmark and prompt name the set) tasks at pass@1."""
    if "per_puzzle" in result:
        return str(result.get("dataset")), result["per_puzzle"], 10, "puzzles"
    described = result.get("benchmark") or {}  # Benchmark.describe()
    if not described.get("benchmark"):  # an unfinished run's file names none (MBPP and its subsets share ids)
        raise ValueError("it names no benchmark (an unfinished `run --out`? finish it with --resume)")
    rows = [{"name": row["task_id"], "n": row["n"], "c": row["c"]} for row in result.get("rows") or []]
    return f"{described['benchmark']} [{described.get('prompt')}]", rows, 1, "tasks"


def compare_main(argv) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.evaluate compare",
                                     description="Pair two saved results of one set task by task.")
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--k", type=int, default=0, help="pass@k to compare (default: 10 for P3, 1 for the suite)")
    args = parser.parse_args(argv)
    try:
        results = [json.loads(path.read_text(encoding="utf-8")) for path in (args.before, args.after)]
        (before_set, before, k, unit), (after_set, after, _, _) = (_paired_rows(result) for result in results)
    except (OSError, ValueError, KeyError, TypeError) as exc:  # JSONDecodeError is a ValueError
        parser.error(f"not a saved result: {exc}")
    if before_set != after_set:
        parser.error(f"the results are on different sets ({before_set} vs {after_set})")
    try:
        comparison = paired.compare(before, after, args.k or k)
    except ValueError as exc:
        parser.error(str(exc))
    print(paired.summary(comparison, unit), file=sys.stderr)
    structures = [structure_by_task(result.get("rows") or []) for result in results]
    comparison["structure"] = {part: paired.compare_scores(structures[0][part], structures[1][part])
                               for part in structures[0].keys() & structures[1].keys()
                               if structures[0][part].keys() & structures[1][part].keys()}
    for part, scores in sorted(comparison["structure"].items()):
        print(paired.score_summary(part.replace("_", " "), scores), file=sys.stderr)
    print(json.dumps(comparison))
    return 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["compare"]:
        return compare_main(argv[1:])
    if argv[:1] in (["run"], ["references"], ["rescore"]):
        from engine.evaluate.suite import cli

        return {"run": cli.run_main, "references": cli.references_main, "rescore": cli.rescore_main}[argv[0]](argv[1:])
    parser = argparse.ArgumentParser(prog="python -m engine.evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("benchmark", choices=["p3", "humaneval"], help="(or `compare BEFORE AFTER`: see above)")
    parser.add_argument("--model", default="", help="HF id, local checkpoint or .gguf ('' = packaged default)")
    parser.add_argument("--backend", default="transformers", help="auto, transformers or llama.cpp")
    parser.add_argument("--quantize", choices=["none", "int8"], default="none",
                        help="int8: torch dynamic int8 on transformers (faster on CPU, damages this model)")
    parser.add_argument("--quantized", action="store_true",
                        help="serve a quantised GGUF as it is (default: its checked f16 copy, as rounds evaluate)")
    parser.add_argument("--data", default="", help="p3: folder with puzzles.json/split.json; humaneval: .jsonl(.gz)")
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--top-k", type=int, default=P3EvalConfig.top_k, help="p3: 0 = no limit")
    parser.add_argument("--top-p", type=float, default=P3EvalConfig.top_p, help="p3")
    parser.add_argument("--max-tokens", type=int, default=0, help="default: 150 (p3), 300 (humaneval)")
    parser.add_argument("--style", choices=STYLES, default="completion")
    parser.add_argument("--subset", type=int, default=0, help="p3: evaluate on this many puzzles (seeded)")
    parser.add_argument("--split", choices=["test", "validation"], default="test", help="p3: which held-out split")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=0, help="humaneval: only the first N problems")
    parser.add_argument("--prompt", choices=PROMPTS, default="instruct",
                        help="humaneval: instruct (chat template, the reply's code block) or completion (raw text)")
    args = parser.parse_args(argv)

    if args.quantize == "none" and not args.quantized:
        model = load_full_precision(args.model, args.backend)
    else:
        model = load_model(args.model, args.backend, args.quantize)
    print(f"{model.name} ({model.backend}, {model.quantization}) loaded in {model.load_seconds:.1f} s", file=sys.stderr)
    verify = lambda jobs: verify_many(jobs)  # noqa: E731
    progress = lambda done, total: print(f"{done}/{total}", file=sys.stderr, flush=True)  # noqa: E731
    if args.benchmark == "p3":
        config = P3EvalConfig(samples=args.samples, temperature=args.temperature, max_tokens=args.max_tokens or 150,
                              style=args.style, subset=args.subset, seed=args.seed, top_k=args.top_k,
                              top_p=args.top_p, split=args.split)
        name, puzzles = held_out_puzzles(args.data or DEFAULT_P3, config.subset, config.seed, config.split)
        result = evaluate_p3(model, puzzles, config, verify, name, progress).as_dict()
    else:
        problems = load_humaneval(args.data or None)
        if args.limit:
            problems = problems[:args.limit]
        result = evaluate_humaneval(model, problems, verify, args.max_tokens or 300, progress=progress,
                                    prompt=args.prompt).as_dict()
    print(json.dumps({"model": model.name, "backend": model.backend, "quantization": model.quantization,
                      "precision": model.precision, "device": getattr(model, "device", "?"),
                      "benchmark": args.benchmark, **result}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
