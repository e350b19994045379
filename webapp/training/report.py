"""The self-play loop's report: a markdown table per concern (scores, data, time) and the JSON."""
from __future__ import annotations

import json
from pathlib import Path

from engine.evaluate import paired


def _pct(value) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def _chat(before: dict, after: dict) -> str:
    """The chat-form code check beside the 3-shot one, where the round ran it."""
    if before.get("code_chat_pass_at_1") is None and after.get("code_chat_pass_at_1") is None:
        return ""
    return f"; chat form {_pct(before.get('code_chat_pass_at_1'))} → {_pct(after.get('code_chat_pass_at_1'))}"


def _pass(scores: dict, k: str, key: str = "pass_at_k") -> str:
    return _pct((scores.get(key) or {}).get(k))


def _solved(scores: dict) -> str:
    return "–" if scores.get("solved") is None else f"{scores['solved']}/{scores.get('puzzles')}"


def _figures(brief: dict) -> str:
    """A rejected interpolation point's gate figures (rounds._brief), to read beside its reason."""
    if brief.get("p3_solved") is None:
        return ""
    code = ", ".join(f"{_pct(value)} ({prompt} prompt)" for prompt, value in (brief.get("code_pass_at_1") or {}).items())
    return (f"P3 {brief['p3_solved']}/{brief.get('p3_puzzles') or '?'} solved, pass@10 {_pass(brief, '10', 'p3_pass_at_k')}"
            + (f"; code pass@1 {code}" if code else "") + "; ")


def _run(scores: dict | None) -> str:
    """One version's figure on a report benchmark: pass@1, each named part's beside it."""
    if not scores:
        return "–"
    if scores.get("status") != "succeeded":
        return f"{scores['version']}: {scores.get('status')} (run {scores.get('run')})"
    parts = ", ".join(f"{name} tests {_pct(values.get('1'))}" for name, values in (scores.get("parts") or {}).items())
    return f"{scores['version']}: {_pct((scores.get('pass_at_k') or {}).get('1'))}" + (f" ({parts})" if parts else "")


def _tests(rows: list[dict]) -> list[str]:
    if not rows:
        return []
    lines = ["", "## Test benchmarks (each promoted version beside the start, same settings; reported, never "
             "selected on)", "", "| benchmark | tasks | start pass@1 | promoted pass@1 | task by task |",
             "|---|---|---|---|---|"]
    for row in rows:
        change = paired.summary(row["paired"], "tasks") if row.get("paired") else "–"
        lines.append(f"| {row['benchmark']} ({row['prompt']} prompt) | {row['tasks']} | {_run(row.get('before'))} | "
                     f"{_run(row['after'])} | {change} |")
    return lines


DATA_WORDS = {"all": "everything verified", "own": "puzzles and solutions the models wrote, nothing else",
              "references": "a control: P3's reference solutions alone",
              "unverified": "a control: as many puzzle pairs as verified data gives, failed attempts kept"}


def recipe(round_settings: dict) -> str:
    """The training settings in one line, so a report read on its own says which recipe (and which
    training draw) made its figures."""
    sft = round_settings.get("sft") or {}
    epochs = f"{sft['epochs']:g} epochs" if sft.get("epochs") else "–"
    length = f"at most {sft['max_steps']} steps" if sft.get("max_steps") else epochs
    parts = [f"sources {', '.join(round_settings.get('sources') or []) or '–'}",
             f"{sft.get('method', 'full')} fine-tuning, {length}, lr {sft.get('learning_rate', '–')}",
             sft.get("precision") or "",
             f"examples up to {sft['max_example_tokens']} tokens" if sft.get("max_example_tokens") else "",
             f"training seed {sft.get('seed', 0)}",
             (f"early stopping on MBPP validation every {sft['validate_every']} steps, patience "
              f"{sft.get('patience', 2)}") if sft.get("validate_every") else "",
             (f"published at interpolation {sft['interpolation']:g} (start + {sft['interpolation']:g} × "
              "(trained − start))") if sft.get("interpolation", 1) != 1 else "",
             (f"fallback α {round_settings['interpolation_fallbacks']} where the gate rejects"
              if round_settings.get("interpolation_fallbacks") else ""),
             f"from the {round_settings['train_from']} version" if round_settings.get("train_from") else "",
             "code checked in both forms" if round_settings.get("chat_check") else ""]
    return "Recipe: " + "; ".join(part for part in parts if part) + "."


def markdown(report: dict) -> str:
    lines = [f"# Self-play report ({len(report['rounds'])} round(s), {report.get('wall_s', 0):.0f} s)", "",
             f"Start: {report.get('start_version')} → end: {report.get('end_version')}", ""]
    boot = report.get("bootstrap")
    if boot:
        refs = boot.get("references", {})
        lines += [f"Bootstrap: P3 imported {boot.get('imported')} (skipped {boot.get('skipped')}); train-split "
                  f"reference solutions verified {refs.get('passed')} passed / {refs.get('checked')} checked, "
                  f"{boot.get('seconds')} s", ""]
        if boot.get("variants"):
            made = boot["variants"]
            lines[-1:-1] = ["", f"New instances of train puzzles: {made.get('created')} written, "
                                f"{made.get('passed')} passed verification, {made.get('failed')} failed"]
        if boot.get("search"):
            made = boot["search"]
            lines[-1:-1] = ["", f"Search solutions of integer-answer puzzles: {made.get('written')} written, "
                                f"{made.get('passed')} passed verification, {made.get('failed')} failed"]
    lines += ["## Scores (the gate's held-out sets: P3 validation; code benchmark greedy)", "",
              "| round | P3 set | pass@1 before → after | pass@10 before → after | solved before → after | "
              "code pass@1 before → after | decision |", "|---|---|---|---|---|---|---|"]
    for row in report["rounds"]:
        b, a = row["before"], row["after"]
        lines.append(f"| {row['round']} | {b.get('dataset') or '–'} | {_pass(b, '1')} → {_pass(a, '1')} | "
                     f"{_pass(b, '10')} → {_pass(a, '10')} | {_solved(b)} → {_solved(a)} | {a.get('code_benchmark') or ''} "
                     f"{_pct(b.get('code_pass_at_1'))} → {_pct(a.get('code_pass_at_1'))}{_chat(b, a)} | "
                     f"{row['decision'] or row['error'] or row['status']} |")
    rejected = [(row["round"], tried) for row in report["rounds"] for tried in row.get("candidates") or []]
    if rejected:
        lines += ["", "Rejected first, then the next interpolation point tried (the table shows the last one):", ""]
        lines += [f"- round {number}, α {tried['alpha']:g} ({tried['name']}): {_figures(tried.get('eval_after') or {})}"
                  f"{tried['decision']}" for number, tried in rejected]
    changes = [(row["round"], row["paired"]) for row in report["rounds"] if row.get("paired")]
    if changes:
        lines += ["", "Puzzle by puzzle (a 95% paired bootstrap interval; the exact sign test on puzzles gained "
                  "vs lost):", ""]
        lines += [f"- round {number}: {paired.summary(change)}" for number, change in changes]
    lines += _tests(report.get("test_benchmarks") or [])
    settings = report.get("settings") or {}
    generation, round_settings = settings.get("generation") or {}, settings.get("round") or {}
    data_kind = round_settings.get("data") or "all"
    lines += ["", "## Data per round", "",
              f"Trained on: {data_kind} data ({DATA_WORDS.get(data_kind, data_kind)}); "
              f"puzzles written by {generation.get('writer', 'self')} in the {generation.get('form', 'completion')} "
              "form.", "", recipe(round_settings), "",
              "| round | generated | parse / signature / answer unused / duplicate / sandbox / trivial rejects | "
              "accepted | attempts | solved | pairs kept | examples trained (puzzle pairs + repairs + MBPP rehearsed) | "
              "left out as test items |",
              "|---|---|---|---|---|---|---|---|---|"]
    for row in report["rounds"]:
        c = (row.get("generation") or {}).get("counts") or {}
        rejects = " / ".join(str(c.get(f"rejected_{name}", 0)) for name in
                             ("parses", "signature", "answer_used", "duplicate", "sandbox", "trivial"))
        data = row.get("dataset") or {}
        dropped = (row.get("training") or {}).get("dropped")
        lines.append(f"| {row['round']} | {c.get('generated', 0)} | {rejects} | {c.get('accepted', 0)} | "
                     f"{c.get('attempts', 0)} | {c.get('solved', 0)} | {c.get('pairs_kept', 0)} | {row['examples']} "
                     f"({data.get('attempts', 0)} + {data.get('examples', data.get('messages', 0))} + "
                     f"{data.get('mbpp', 0) + data.get('mbpp_chat', 0)})"
                     + (f", {data['failed']} of the pairs failed" if "failed" in data else "")
                     + (f"; {dropped} of them over the token limit, left out" if dropped else "") + " | "
                     f"{data.get('excluded', 0)} |")
    lines += ["", "## Time per stage", "", "| round | stage | wall s | tokens | tokens/s |", "|---|---|---|---|---|"]
    for row in report["rounds"]:
        for stage, t in ((row.get("generation") or {}).get("timings") or {}).items():
            lines.append(f"| {row['round']} | self-play {stage} | {t.get('seconds', 0):.1f} | {t.get('tokens', 0)} | "
                         f"{t.get('tokens_per_s', 0)} |")
        training = row.get("training") or {}
        if not training:  # skipped as a repeat, or failed first: its decision or error says why
            lines.append(f"| {row['round']} | not trained | 0.0 | – | – |")
        else:
            # rounds from before precision was recorded ran in fp32 on a CPU but bf16 on CUDA: unknown, not shown
            details = f", {training['precision']}" if training.get("precision") else ""
            if training.get("best_step") is not None:
                details += (f", kept step {training['best_step']} (best on validation"
                              + (", stopped early)" if training.get("stopped_early") else ")"))
            lines.append(f"| {row['round']} | fine-tune ({training.get('steps')} steps, {training.get('epochs')} "
                         f"epochs{details}) | {training.get('seconds', 0) or 0:.1f} | {training.get('tokens', 0)} "
                         f"per epoch | {training.get('tokens_per_s', 0)} |")
        for tried in row.get("candidates") or []:  # the points the gate rejected before the last
            seconds = (tried.get("eval_after") or {}).get("seconds")
            lines.append(f"| {row['round']} | evaluate α {tried['alpha']:g} (rejected) | "
                         + ("reused | – | – |" if seconds is None else f"{seconds:.1f} | – | – |"))
        for when in ("before", "after"):
            s = row[when]
            if not s.get("model") and not s.get("reused"):  # not evaluated (a skipped round)
                continue
            if s.get("reused"):  # measured in an earlier round with the same settings: no time spent here
                lines.append(f"| {row['round']} | evaluate {when}: reused from an earlier round | 0.0 | – | – |")
                continue
            lines.append(f"| {row['round']} | evaluate {when}: P3 | {s.get('p3_seconds') or 0:.1f} | – | "
                         f"{s.get('p3_tokens_per_s') or 0} |")
            if s.get("code_seconds") is not None:
                lines.append(f"| {row['round']} | evaluate {when}: {s.get('code_benchmark')} | {s['code_seconds']:.1f} "
                             f"| – | {s.get('code_tokens_per_s') or 0} |")
            if s.get("code_chat_seconds") is not None:
                lines.append(f"| {row['round']} | evaluate {when}: {s.get('code_benchmark')}, chat form | "
                             f"{s['code_chat_seconds']:.1f} | – | {s.get('code_chat_tokens_per_s') or 0} |")
    for row in report.get("test_benchmarks") or []:
        for scores in (row.get("before"), row["after"]):
            if scores and scores.get("seconds") is not None:
                spent = "reused" if scores.get("reused") else f"{scores['seconds']:.1f}"
                lines.append(f"| – | test benchmark {row['benchmark']} on {scores['version']} (run {scores['run']}) | "
                             f"{spent} | – | – |")
    return "\n".join(lines) + "\n"


def write(report: dict, folder: str | Path) -> tuple[Path, Path]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    md, js = folder / "report.md", folder / "report.json"
    md.write_text(markdown(report), encoding="utf-8")
    js.write_text(json.dumps(report, indent=1, default=str), encoding="utf-8")
    return md, js
