"""The self-play loop of one model: generate puzzles → filter → solve → verify → keep the shortest
verified solutions, batch by batch, within a budget.

Each stage is a function of its inputs (so the web app's Celery tasks can run them one by one on
the right queues, saving what each returns), and `SelfPlayPipeline` runs them back to back for
the command line, saving every finished batch to a store: a crash loses at most the batch in
progress, and a rerun resumes after the last saved one.
"""
from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from engine.config import Problems, StrictConfig, check_sampling
from engine.lm.generation import CancelToken, SamplingParams
from engine.lm.prompt_tokens import chat_text, token_aligned
from engine.lm.throughput import tokens_per_s
from engine.selfplay import filters
from engine.selfplay.generation_prompt import FORMS, generated_function, generation_prompt, stops, written_solution
from engine.selfplay.puzzle_code import fingerprint
from engine.selfplay.solving_prompts import STYLES, solving_style, style_params
from engine.selfplay.training_text import shortest_distinct

Verify = Callable[[list[dict]], Iterable]  # sandbox jobs in, verdicts (objects or dicts) out
COUNTS = ("generated", *(f"rejected_{name}" for name in filters.FILTERS),
          *(f"parse_{cause}" for cause in filters.PARSE_CAUSES), "accepted", "attempts", "attempts_passed",
          "solved", "pairs_kept", "writer_errors")
WRITERS = ("self", "teacher")
STAGES = ("generate", "filter", "solve", "verify")


@dataclass(frozen=True)
class SelfPlayConfig(StrictConfig):
    KIND = "self-play settings"

    batches: int = 4  # the budget: generation prompts
    puzzles_per_prompt: int = 16  # completions of each generation prompt
    attempts: int = 8  # solving samples per puzzle that passed the filters
    generation_temperature: float = 0.9
    solving_temperature: float = 0.8
    generation_tokens: int = 200  # for the puzzle (the pair form adds solving_tokens for its solution)
    solving_tokens: int = 150
    context_tokens: int = 2048  # the generation prompt fills this, minus writing_tokens
    style: str = "completion"  # how puzzles are put to the model to solve (solving_prompts.STYLES)
    # How the model is asked to write puzzles (generation_prompt.FORMS). The pair form keeps the
    # most: more accepted puzzles and verified pairs than the paper's completion form, from the
    # base model and far more from a fine-tuned one (docs/experiments.md, the funnel per form).
    form: str = "pair"
    writer: str = "self"  # who writes the puzzles: the model being trained, or a teacher (an endpoint)
    # Both stages sample as the paper did (transformers' generate defaults: top-k 50, no top-p cut).
    top_k: int = 50
    top_p: float = 1.0
    verify_timeout_s: float = 2.0
    max_solutions: int = 8  # kept per puzzle (the shortest distinct verified ones)
    max_batch_rows: int = 64  # sequences decoded together
    seed: int = 0

    def __post_init__(self):
        problems = Problems()
        for name in ("batches", "puzzles_per_prompt", "attempts", "generation_tokens", "solving_tokens",
                     "max_solutions", "max_batch_rows"):
            if int(getattr(self, name)) < 1:
                problems.add(name, f"{name} must be at least 1")
        for name in ("generation_temperature", "solving_temperature"):
            if not 0 <= getattr(self, name) <= 2:
                problems.add(name, "temperatures must be between 0 and 2")
        if self.context_tokens < self.writing_tokens + 64:
            problems.add("context_tokens", "context_tokens must leave room for the examples")
        if self.style not in STYLES:
            problems.add("style", f"unknown prompt style {self.style!r}; choose one of {', '.join(STYLES)}")
        if self.writer not in WRITERS:
            problems.add("writer", f"the puzzle writer must be one of {', '.join(WRITERS)}")
        if self.form not in FORMS:
            problems.add("form", f"unknown puzzle-writing form {self.form!r}; choose one of {', '.join(FORMS)}")
        check_sampling(problems, self.top_k, self.top_p)
        problems.raise_any()

    @property
    def writing_tokens(self) -> int:
        """New tokens a writer may sample: the puzzle's, and in the pair form its solution's too."""
        return self.generation_tokens + (self.solving_tokens if self.form == "pair" else 0)

    def generation_params(self, batch: int) -> SamplingParams:
        return SamplingParams(max_new_tokens=self.writing_tokens, temperature=self.generation_temperature,
                              top_k=self.top_k, top_p=self.top_p, stop=stops(self.form),
                              seed=self.seed * 100_003 + batch)

    def solving_params(self, batch: int) -> SamplingParams:
        return SamplingParams(max_new_tokens=self.solving_tokens, temperature=self.solving_temperature,
                              top_k=self.top_k, top_p=self.top_p, seed=self.seed * 100_003 + batch + 50_000)


@dataclass
class StageTiming:
    seconds: float = 0.0
    tokens: int = 0
    items: int = 0
    retries: int = 0  # requests to a teacher endpoint that failed and were sent again

    def add(self, seconds: float, tokens: int = 0, items: int = 0) -> None:
        self.seconds += seconds
        self.tokens += tokens
        self.items += items

    @property
    def tokens_per_s(self) -> float:
        return tokens_per_s(self.tokens, self.seconds)


def new_counts() -> dict[str, int]:
    return dict.fromkeys(COUNTS, 0)


def tally(counts: dict[str, int], tries: list[dict], kept: int) -> None:
    """Add one solved-or-not puzzle's attempts to a batch's counts."""
    passed = sum(1 for a in tries if a.get("status") == "passed")
    counts["attempts"] += len(tries)
    counts["attempts_passed"] += passed
    counts["solved"] += bool(passed)
    counts["pairs_kept"] += kept


def sum_batches(batches: Iterable[tuple[dict | None, dict | None]]) -> tuple[dict, dict]:
    """A run's counts and per-stage timings: the sums over its batches' (counts, timings), so
    that counting again after a repeated step never counts twice."""
    counts, timings = new_counts(), {}
    for batch_counts, batch_timings in batches:
        for key, value in (batch_counts or {}).items():
            counts[key] = counts.get(key, 0) + value
        for stage, timing in (batch_timings or {}).items():
            total = timings.setdefault(stage, {"seconds": 0.0, "tokens": 0, "items": 0, "retries": 0})
            for key in total:
                total[key] += timing.get(key, 0)
    return counts, timings


def _as_dict(verdict) -> dict:
    return verdict if isinstance(verdict, dict) else verdict.as_dict()


def _chunks(items: list, size: int) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


# -- the stages ---------------------------------------------------------------------------------
def generate(model, examples: Sequence, config: SelfPlayConfig, batch: int,
             cancel: CancelToken | None = None) -> tuple[list[dict], StageTiming]:
    """New puzzles from one generation prompt, each {"source": the function cut from the
    completion, "solution": the pair form's `def sol` or None, "finish", "text"} (test-split
    examples raise TestSplitLeak)."""
    started = time.perf_counter()
    retried = getattr(model, "retried", 0)
    tokenizer = getattr(model, "tokenizer", None)
    # Chat messages become text through the model's template; an endpoint takes the messages.
    chat = (lambda messages: chat_text(tokenizer, messages)) if tokenizer is not None else (lambda messages: messages)
    prompt = generation_prompt(examples, lambda text: len(model.encode(text)), config.context_tokens,
                               config.writing_tokens, random.Random(config.seed * 7919 + batch), config.form, chat)
    completions = model.sample(prompt.text, config.puzzles_per_prompt, config.generation_params(batch), cancel)
    written = [{"source": "", "solution": None, "finish": c.finish_reason, "text": "",
                "error": c.finish_reason.split(":", 1)[-1]} if c.finish_reason.startswith("error")
               else {"source": generated_function(prompt, c.text), "solution": written_solution(prompt, c.text),
                     "finish": c.finish_reason, "text": c.text} for c in completions]
    timing = StageTiming(retries=getattr(model, "retried", 0) - retried)
    timing.add(time.perf_counter() - started, sum(c.tokens for c in completions), len(completions))
    return written, timing


def as_written(functions: list) -> list[dict]:
    """A batch's generated puzzles as `generate` returns them (batches saved before it returned
    dicts hold bare sources)."""
    return [item if isinstance(item, dict) else {"source": item, "solution": None, "finish": "", "text": item}
            for item in functions]


def filter_puzzles(functions: list, seen: set[str], verify: Verify,
                   counts: dict[str, int]) -> tuple[list[filters.Candidate], StageTiming]:
    """Every candidate with its fate; `seen` (fingerprints) gains the accepted ones."""
    started = time.perf_counter()
    written = as_written(functions)
    counts["writer_errors"] += sum(1 for item in written if item.get("error"))  # failed requests: nothing written
    candidates = [filters.check_static(item["source"], seen, item.get("finish", ""), item.get("solution"))
                  for item in written if not item.get("error")]
    alive = [c for c in candidates if c.accepted]
    jobs = [filters.sandbox_job(c, str(i)) for i, c in enumerate(alive)]
    for verdict in verify(jobs):
        verdict = _as_dict(verdict)
        filters.apply_sandbox_verdict(alive[int(verdict["id"])], verdict)
    for candidate in candidates:
        if not candidate.accepted and candidate.rejected_by != filters.DUPLICATE and candidate.fingerprint:
            seen.discard(candidate.fingerprint)  # a rejected puzzle may come back fixed
        key = f"rejected_{candidate.rejected_by}" if candidate.rejected_by else "accepted"
        counts[key] += 1
        if candidate.cause:
            counts[f"parse_{candidate.cause}"] += 1
    counts["generated"] += len(candidates)
    timing = StageTiming()
    timing.add(time.perf_counter() - started, items=len(candidates))
    return candidates, timing


def solve(model, sats: list[str], config: SelfPlayConfig, batch: int,
          cancel: CancelToken | None = None) -> tuple[list[list[dict]], StageTiming]:
    """`config.attempts` attempts per puzzle: [{"solution" (a `def sol`, or None), "text", "tokens"}]."""
    started = time.perf_counter()
    tokenizer = getattr(model, "tokenizer", None)
    style = solving_style(config.style, lambda messages: chat_text(tokenizer, messages),
                          (lambda text: token_aligned(tokenizer, text)) if tokenizer is not None else None)
    params = style_params(style, config.solving_params(batch))
    per_call = max(1, config.max_batch_rows // config.attempts)
    results: list[list[dict]] = []
    tokens = 0
    for group in _chunks(sats, per_call):
        rows = model.sample_many([style.prompt(sat) for sat in group], config.attempts, params, cancel)
        for sat, completions in zip(group, rows):
            results.append([{"solution": style.solution(sat, c.text), "text": c.text, "tokens": c.tokens}
                            for c in completions])
            tokens += sum(c.tokens for c in completions)
    timing = StageTiming()
    timing.add(time.perf_counter() - started, tokens, len(sats) * config.attempts)
    return results, timing


def verify_attempts(sats: list[str], attempts: list[list[dict]], verify: Verify,
                    timeout_s: float = 2.0) -> StageTiming:
    """Adds `status`, `detail` and `duration_ms` to every attempt (no solution: an error, not run)."""
    started = time.perf_counter()
    jobs, where = [], {}
    for p, (sat, tries) in enumerate(zip(sats, attempts)):
        for a, attempt in enumerate(tries):
            if attempt["solution"] is None:
                attempt.update(status="error", detail="no solution function in the completion", duration_ms=0.0)
                continue
            job_id = f"{p}:{a}"
            where[job_id] = attempt
            jobs.append({"id": job_id, "kind": "puzzle", "sat": sat, "sol": attempt["solution"],
                         "timeout_s": timeout_s})
    for verdict in verify(jobs):
        verdict = _as_dict(verdict)
        where[verdict["id"]].update(status=verdict["status"], detail=verdict.get("detail", ""),
                                    duration_ms=verdict.get("duration_ms", 0.0))
    timing = StageTiming()
    timing.add(time.perf_counter() - started, items=len(jobs))
    return timing


def with_written(candidates: list[filters.Candidate], attempts: list[list[dict]]) -> list[list[dict]]:
    """Each puzzle's attempts, the solution written with it (the pair form) first: verified with the
    solver's, kept or not by the same rules, marked `"by": "writer"`."""
    return [([{"solution": c.solution, "text": c.solution, "tokens": 0, "by": "writer"}] if c.solution else [])
            + list(tries) for c, tries in zip(candidates, attempts)]


def keep_solutions(attempts: list[dict], keep: int = 8) -> list[str]:
    """The shortest distinct verified solutions of one puzzle."""
    return shortest_distinct([a["solution"] for a in attempts if a.get("status") == "passed"], keep)


# -- one batch, and the whole run ---------------------------------------------------------------
@dataclass
class BatchResult:
    index: int
    puzzles: list[dict] = field(default_factory=list)  # accepted: sat, answer_type, fingerprint, attempts, kept
    rejected: list[dict] = field(default_factory=list)  # source, rejected_by, detail
    counts: dict = field(default_factory=new_counts)
    timings: dict = field(default_factory=dict)  # stage -> StageTiming as a dict


class BatchStore:
    """Finished batches as JSON lines in `folder/batches.jsonl` (a torn last line is ignored)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.path = self.folder / "batches.jsonl"

    def completed(self) -> dict[int, dict]:
        done = {}
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    record = json.loads(line)
                except ValueError:
                    continue  # a line cut short by a crash mid-write
                done[record["index"]] = record
        return done

    def save(self, batch: BatchResult) -> dict:
        """Append the batch (after a torn line, on a line of its own); returns it as saved."""
        self.folder.mkdir(parents=True, exist_ok=True)
        record = asdict(batch)
        with open(self.path, "a+b") as out:
            torn = out.tell() > 0 and (out.seek(-1, os.SEEK_END), out.read(1))[1] != b"\n"
            out.write((b"\n" if torn else b"") + json.dumps(record).encode() + b"\n")
            out.flush()
            os.fsync(out.fileno())
        return record


@dataclass
class RunSummary:
    counts: dict
    timings: dict  # stage -> {"seconds", "tokens", "items", "tokens_per_s"}
    batches: int
    resumed: int
    seconds: float
    pairs: list = field(default_factory=list)


class SelfPlayPipeline:
    def __init__(self, model, examples: Sequence, verify: Verify, config: SelfPlayConfig, store: BatchStore,
                 progress: Callable[[dict], None] | None = None, cancel: CancelToken | None = None,
                 known: Iterable[str] = (), writer=None):
        """`writer`: the model that writes puzzles when it is not `model` (a teacher)."""
        self.model, self.examples, self.verify, self.config, self.store = model, examples, verify, config, store
        self.writer = writer or model
        self.progress = progress or (lambda event: None)
        self.cancel = cancel
        self.seen = set(known) | {fingerprint(p.sat) for p in examples}

    def run_batch(self, index: int) -> BatchResult:
        config, result = self.config, BatchResult(index)
        timings = {stage: StageTiming() for stage in STAGES}

        def report(stage: str):
            self.progress({"stage": stage, "batch": index, "batches": config.batches, "counts": dict(result.counts)})

        report("generate")
        functions, timings["generate"] = generate(self.writer, self.examples, config, index, self.cancel)
        report("filter")
        candidates, timings["filter"] = filter_puzzles(functions, self.seen, self.verify, result.counts)
        accepted = [c for c in candidates if c.accepted]
        result.rejected = [{"source": c.source, "rejected_by": c.rejected_by, "cause": c.cause, "detail": c.detail}
                           for c in candidates if not c.accepted]
        report("solve")
        sats = [c.sat for c in accepted]
        attempts, timings["solve"] = solve(self.model, sats, config, index, self.cancel) if sats else ([], StageTiming())
        attempts = with_written(accepted, attempts)
        report("verify")
        timings["verify"] = verify_attempts(sats, attempts, self.verify, config.verify_timeout_s)
        for candidate, tries in zip(accepted, attempts):
            kept = keep_solutions(tries, config.max_solutions)
            result.puzzles.append({"sat": candidate.sat, "answer_type": candidate.answer_type, "writer": self.writer.name,
                                   "fingerprint": candidate.fingerprint, "attempts": tries, "kept": kept})
            tally(result.counts, tries, len(kept))
        result.timings = {stage: asdict(timing) for stage, timing in timings.items()}
        report("done")
        return result

    def run(self) -> RunSummary:
        started = time.perf_counter()
        done = self.store.completed()
        for record in done.values():  # earlier batches of this run: their puzzles are known
            self.seen.update(p["fingerprint"] for p in record["puzzles"])
        records = []
        for index in range(self.config.batches):
            if index not in done and self.cancel is not None and self.cancel.cancelled:
                break
            records.append(done[index] if index in done else self.store.save(self.run_batch(index)))
        counts, timings = sum_batches((r["counts"], r["timings"]) for r in records)
        rates = {stage: {**t, "tokens_per_s": round(t["tokens"] / t["seconds"], 1) if t["seconds"] else 0.0}
                 for stage, t in timings.items()}
        pairs = [(p["sat"], s) for r in records for p in r["puzzles"] for s in p["kept"]]
        return RunSummary(counts, rates, self.config.batches, len(done), time.perf_counter() - started, pairs)
