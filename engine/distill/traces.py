"""Teacher traces for distillation: for each task the teacher writes its solution pathway (a few
sentences of reasoning, then the code), k samples a task, and the sandbox keeps only the traces
whose code passes the task's tests or solves its puzzle (rejection sampling), so the student never
learns a wrong program, however well argued.

A trace the student learns from is a chat pair: the task's plain prompt (the one the benchmarks and
the chat ask with) and the teacher's reasoning and code as the answer, so the student learns to
reason before it writes without being told to. Test splits are refused here, not only upstream."""
from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field

from engine.codechat.checks import entry_point_of, job_for, reply_code
from engine.config import Problems, StrictConfig, check_sampling
from engine.datasets.mbpp import split_of
from engine.lm.generation import CancelToken, SamplingParams
from engine.sandbox.verdict import short
from engine.training.tasks import CodeTask

Verify = Callable[[list[dict]], Iterable]
# Both parts named, in order: Qwen2.5-Coder-1.5B, asked to explain and then "give the code", ended 7
# of 16 replies after the explanation (the 0.5B 3 of 96); shown a form to fill, it left out the
# explanation in 9 of 16.
REASONING_REQUEST = ("\n\nFirst write \"Approach:\" and two or three short sentences of plain text, then the "
                     "complete function in one ```python code block. Nothing after the code.")
CODE_END = "\n```\n"  # the closing fence: generation stops there (what a teacher adds after the code is not kept)
MIN_REASONING_CHARS = 20
# A trace with one of these has no answer from the teacher (the request failed after its retries, or
# the run was cancelled first): it is shown and counted as such, and a resumed run asks again.
TEACHER_ERROR, CANCELLED = "teacher error", "cancelled"
UNANSWERED = (TEACHER_ERROR, CANCELLED)
TEST_SOURCES = ("humaneval", "evalplus", "p3-test")  # sources that are test data whatever the id


class TraceError(ValueError):
    """Tasks that must not be traced (a test split), with the offending sources."""


@dataclass(frozen=True)
class TraceConfig(StrictConfig):
    KIND = "trace settings"

    samples: int = 4  # k traces asked per task
    max_tokens: int = 512
    temperature: float = 0.7
    top_k: int = 50
    top_p: float = 0.95
    seed: int = 0
    batch_tasks: int = 8  # tasks sent to the teacher together (then verified together)

    def check(self) -> TraceConfig:
        problems = Problems()
        if not 1 <= self.samples <= 64:
            problems.add("samples", "samples must be between 1 and 64")
        if not 16 <= self.max_tokens <= 8192:
            problems.add("max_tokens", "max_tokens must be between 16 and 8192")
        if self.temperature < 0:
            problems.add("temperature", "temperature must be at least 0")
        if self.batch_tasks < 1:
            problems.add("batch_tasks", "batch_tasks must be at least 1")
        check_sampling(problems, self.top_k, self.top_p)
        problems.raise_any()
        return self

    def params(self) -> SamplingParams:
        return SamplingParams(max_new_tokens=self.max_tokens, temperature=self.temperature, top_k=self.top_k,
                              top_p=self.top_p, seed=self.seed, stop=(CODE_END,))


@dataclass
class Trace:
    task_id: str
    source: str
    kind: str
    sample: int  # its index among the task's k samples
    prompt: list[dict]  # what the teacher was asked
    reply: str
    reasoning: str
    code: str
    status: str  # the sandbox's verdict ("passed", "failed", …), "no code" / "no reasoning", or UNANSWERED
    detail: str = ""
    tokens: int = 0
    kept: bool = False  # passed, with reasoning, and not a duplicate of a kept trace of the task

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class TraceRun:
    teacher: str
    settings: dict
    tasks: int = 0
    traces: list[Trace] = field(default_factory=list)
    cancelled: bool = False
    out_of_time: bool = False  # the time budget ran out before every task was asked

    @property
    def asked(self) -> int:
        return len(self.traces)

    @property
    def kept(self) -> int:
        return sum(t.kept for t in self.traces)

    def summary(self) -> dict:
        """The run's figures, counted from its traces."""
        counts: dict[str, int] = {}
        for trace in self.traces:
            counts[trace.status] = counts.get(trace.status, 0) + 1
        return {"teacher": self.teacher, "settings": self.settings, "tasks": self.tasks, "asked": self.asked,
                "kept": self.kept, "tasks_with_trace": len({t.task_id for t in self.traces if t.kept}),
                "tokens": sum(t.tokens for t in self.traces), "counts": counts, "cancelled": self.cancelled,
                "out_of_time": self.out_of_time}


def trace_prompt(task: CodeTask) -> list[dict]:
    """The task's own prompt with the request to reason first."""
    message = task.prompt()[0]
    return [{"role": "user", "content": message["content"] + REASONING_REQUEST}]


def split_reply(reply: str) -> str:
    """The reasoning: the reply's text before its first code block, without a "Reasoning:" or
    "Approach:" label."""
    head = reply.split("```", 1)[0].strip()
    return re.sub(r"^\**\s*(reasoning|approach)\s*:?\**\s*:?\s*", "", head, flags=re.IGNORECASE).strip()


def student_answer(reasoning: str, code: str) -> str:
    """What the student learns to write: the reasoning, then the code in one fenced block."""
    return f"{reasoning.strip()}\n\n```python\n{code.strip()}\n```"


def student_messages(task_prompt: list[dict], reasoning: str, code: str) -> list[dict]:
    """A kept trace in the chat format (the export, and the training example): the plain task prompt
    (without the reasoning request), the reasoning and code as the answer."""
    content = task_prompt[0]["content"]
    if content.endswith(REASONING_REQUEST):
        content = content[:-len(REASONING_REQUEST)]
    return [{"role": "user", "content": content}, {"role": "assistant", "content": student_answer(reasoning, code)}]


def is_test_source(source: str) -> bool:
    """`mbpp:<id>` of MBPP's test split (11-510), or a HumanEval / EvalPlus / P3-test source."""
    name, _, number = (source or "").partition(":")
    if name == "mbpp":
        return not number.isdigit() or split_of(int(number)) == "test"
    return name.startswith(TEST_SOURCES)


def refuse_test_splits(tasks: Sequence[CodeTask]) -> None:
    bad = [task.source for task in tasks if is_test_source(task.source)]
    if bad:
        raise TraceError(f"{len(bad)} task(s) come from a test split and are never traced: {', '.join(bad[:5])}")


def write_traces(teacher, tasks: Sequence[CodeTask], config: TraceConfig, verify: Verify,
                 progress: Callable[[dict], None] | None = None, cancel: CancelToken | None = None,
                 teacher_name: str = "", on_batch: Callable[[list[Trace]], None] | None = None,
                 max_minutes: float = 0.0) -> TraceRun:
    """k traces a task from `teacher` (anything with `sample_many`, e.g. a CachedSampler), checked in
    the sandbox `batch_tasks` tasks at a time; every trace is returned, the kept ones marked, and
    each checked batch handed to `on_batch` (to store it before the next one is asked for).
    With `max_minutes` no batch starts once that much time has passed (a started batch finishes, so
    no teacher answer is thrown away): a slow local teacher then traces what fits, and a run with a
    longer budget (or none) over the same cache goes on from there."""
    config.check()
    refuse_test_splits(tasks)
    run = TraceRun(teacher_name or getattr(teacher, "name", "teacher"), config.as_dict(), tasks=len(tasks))
    params = config.params()
    started = time.monotonic()
    for start in range(0, len(tasks), config.batch_tasks):
        if cancel is not None and cancel.cancelled:
            run.cancelled = True
            break
        if max_minutes and start and time.monotonic() - started >= max_minutes * 60:
            run.out_of_time = True
            break
        batch = list(tasks[start:start + config.batch_tasks])
        prompts = [trace_prompt(task) for task in batch]
        answers = teacher.sample_many(prompts, config.samples, params, cancel)
        traces = [_trace(task, prompt, index, answer.text, answer.tokens, answer.finish_reason)
                  for task, prompt, row in zip(batch, prompts, answers) for index, answer in enumerate(row)]
        _check(traces, batch, verify)
        for task in batch:
            _keep_distinct([t for t in traces if t.task_id == task.task_id])
        if on_batch is not None:
            on_batch(traces)
        run.traces += traces
        if progress is not None:
            progress({"done": start + len(batch), "tasks": len(tasks), "asked": run.asked, "kept": run.kept})
    return run


def _trace(task: CodeTask, prompt: list[dict], index: int, reply: str, tokens: int, finish: str = "") -> Trace:
    if finish.startswith("error"):  # not the teacher's answer
        return Trace(task.task_id, task.source, task.kind, index, prompt, "", "", "", TEACHER_ERROR,
                     detail=f"the request failed ({finish.removeprefix('error:')})")
    if finish == "cancelled":
        return Trace(task.task_id, task.source, task.kind, index, prompt, "", "", "", CANCELLED,
                     detail="cancelled before the teacher answered")
    code = reply_code(task.kind, reply, entry_point_of(task.tests), task.tests) or ""
    reasoning = split_reply(reply)
    status = "no code" if not code else "no reasoning" if len(reasoning) < MIN_REASONING_CHARS else ""
    return Trace(task.task_id, task.source, task.kind, index, prompt, reply, reasoning, code, status, tokens=tokens)


def _check(traces: list[Trace], tasks: list[CodeTask], verify: Verify) -> None:
    by_id = {task.task_id: task for task in tasks}
    jobs = []
    for number, trace in enumerate(traces):
        if trace.status:
            continue
        task = by_id[trace.task_id]
        jobs.append(job_for(task.kind, trace.code, tests=task.tests, sat=task.sat, setup=task.setup,
                            job_id=str(number)))
    for verdict in verify(jobs) if jobs else []:
        verdict = verdict if isinstance(verdict, dict) else verdict.as_dict()
        trace = traces[int(verdict["id"])]
        trace.status = verdict.get("status") or "error"
        trace.detail = short(str(verdict.get("detail") or ""), 300)
    for trace in traces:
        trace.status = trace.status or "error"


def _keep_distinct(traces: list[Trace]) -> None:
    """Passing traces are kept, but one copy of each distinct (reasoning, code)."""
    seen = set()
    for trace in traces:
        key = (trace.reasoning, trace.code)
        trace.kept = trace.status == "passed" and key not in seen
        if trace.kept:
            seen.add(key)


def trace_tasks(data_dir, sources: Sequence[str] = ("mbpp",), limit: int = 0) -> list[CodeTask]:
    """Tasks from the benchmark data that may be traced: MBPP train (601-974) and P3 train puzzles
    (one instance a problem; validation and test problems left out), less any task a test set
    holds too (MBPP+ keeps some MBPP train tasks: tracing them would teach a reported benchmark)."""
    from pathlib import Path

    from engine.datasets.held_out import held_out_index, trainable_mbpp
    from engine.selfplay.p3 import load_p3, one_per_problem, training_safe

    index = held_out_index(str(data_dir))
    tasks: list[CodeTask] = []
    if "mbpp" in sources:
        tasks += [CodeTask.from_mbpp(t) for t in trainable_mbpp(data_dir)]
    if "p3" in sources:
        puzzles = training_safe(one_per_problem(p for p in load_p3(Path(data_dir) / "p3") if p.split == "train"))
        tasks += [CodeTask(p.name, "", [], "", f"p3:{p.name}", p.solutions[0] if p.solutions else "", "puzzle", p.sat)
                  for p in puzzles if not index.match(p.sat)]
    return tasks[:limit or None]
