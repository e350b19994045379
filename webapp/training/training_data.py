"""The verified data a round trains on, read from the database at the moment the round starts:
kept solutions of puzzles that may be trained on (never the test split, never rejected or flagged
ones) in the P3 f/g/assert format, and the training-data ledger's trainable rows (verified chat
repairs, as the messages the model was given and its reply) in the chat format. The round stores
the ids and a content hash."""
from __future__ import annotations

import random

from django.db.models import Q

from engine.selfplay.training_text import training_example
from engine.training.packing import TrainingText
from webapp.datasets.chat_tasks import verified_chat_tasks
from webapp.datasets.held_out import held_out
from webapp.datasets.models import TrainingExample
from webapp.puzzles.models import TRAINABLE_PUZZLES, Attempt, Puzzle

SOURCES = ("selfplay", "chat", "mbpp", "mbpp-chat")
# "mbpp" and "mbpp-chat" (rehearsal of MBPP train tasks in the paper's form and in the chat form) are
# asked for per round
DEFAULT_SOURCES = ("selfplay", "chat")
REHEARSAL = {"mbpp": "mbpp", "mbpp-chat": "mbpp_chat"}  # source -> its snapshot key
DATA = ("all", "own", "unverified", "references")
# The pairs of `--data own`: a puzzle a version of the model being trained wrote (not a teacher: it
# has no version), solved by a model (the solver, or the writer in the pair form); never a shipped
# reference, a variant or a search template.
OWN_PAIRS = Q(puzzle__source=Puzzle.Source.GENERATED, puzzle__model_version__isnull=False, origin=Attempt.Origin.MODEL)
# The controls of the self-play paper, which separate what verification adds from what any
# fine-tuning adds. `references`: P3's own reference solutions alone (no variants, search
# templates, seeds or model-written pairs). `unverified`: the same number of pairs as `all`, drawn
# from the kept verified pairs and every failed attempt alike, so failures stay in at the rate the
# pipeline produced them (the paper's `include_failures`).
REFERENCE_PAIRS = Q(origin=Attempt.Origin.REFERENCE,
                    puzzle__source__in=[Puzzle.Source.P3_TRAIN, Puzzle.Source.P3_OTHER])
UNVERIFIED_POOL = (TRAINABLE_PUZZLES & ~Q(puzzle__status=Puzzle.Status.REJECTED)
                   & (Q(kept=True, status="passed") | ~Q(status__in=["passed", "reference", "pending"])))


def puzzle_pairs(since_id: int = 0):
    return Attempt.objects.training_pairs().filter(id__gt=since_id).select_related("puzzle").order_by("id")


def unverified_pairs(count: int, seed: int = 0) -> list[Attempt]:
    """`count` attempts drawn (seeded) from the verified pairs and the failed attempts together:
    what training would see if the sandbox's verdicts were ignored. A failure that does not parse
    (a cut-off reply) cannot be written as `f` / `g` / `assert`, so it is not in the draw."""
    pool = [a for a in Attempt.objects.filter(UNVERIFIED_POOL).select_related("puzzle").order_by("id")
            if _writable(a)]
    return sorted(random.Random(seed).sample(pool, min(count, len(pool))), key=lambda a: a.pk)


def _writable(attempt: Attempt) -> bool:
    try:
        training_example(attempt.puzzle.sat, attempt.code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def ledger_rows(since_id: int = 0):
    return TrainingExample.objects.filter(id__gt=since_id).trainable()


def ledger_ids(dataset: dict | None) -> list[int]:
    """The ledger rows of a snapshot (snapshots taken before the ledger named chat messages instead)."""
    dataset = dataset or {}
    if "examples" in dataset:
        return list(dataset["examples"])
    messages = dataset.get("messages") or []
    return list(TrainingExample.objects.filter(source_message_id__in=messages).values_list("pk", flat=True))


def collect(sources=DEFAULT_SOURCES, data: str = "all") -> tuple[list[TrainingText], dict]:
    """Training examples and the snapshot record {"attempts": [ids], "examples": [ledger ids],
    "excluded": {"attempt:7": "p3-test:…"}} (and "mbpp" / "mbpp_chat": [task ids] when MBPP train
    tasks are rehearsed in the paper's / the chat form, and "failed": [ids] for the `unverified`
    control). `data="own"`: only puzzles this project's models wrote and solutions they wrote (no P3
    references, variants, search-template pairs or MBPP tasks), and no chat; `references` and
    `unverified`: the controls above (chat and MBPP as asked, so only the puzzle pairs differ from `all`).
    Whatever its labels say, an item whose content matches a test item is left out and named."""
    examples, ids, excluded = [], {"attempts": [], "examples": []}, {}
    index = held_out()
    if "selfplay" in sources:
        pairs = puzzle_pairs()
        if data == "own":
            pairs = pairs.filter(OWN_PAIRS)
        elif data == "references":
            pairs = pairs.filter(REFERENCE_PAIRS)
        elif data == "unverified":
            pairs = unverified_pairs(pairs.count())
            ids["failed"] = []
        for attempt in pairs:
            matched = index.match_fingerprint(attempt.puzzle.fingerprint) or index.match(attempt.code)
            if matched:
                excluded[f"attempt:{attempt.pk}"] = matched
                continue
            examples.append(TrainingText(training_example(attempt.puzzle.sat, attempt.code),
                                         source=f"attempt:{attempt.pk}"))
            ids["attempts"].append(attempt.pk)
            if "failed" in ids and not attempt.passed:
                ids["failed"].append(attempt.pk)
    if "chat" in sources and data != "own":
        for row in ledger_rows():
            matched = index.match("\n\n".join(str(m.get("content", "")) for m in row.messages))
            if matched:
                excluded[f"example:{row.pk}"] = matched
                continue
            examples.append(TrainingText(messages=tuple(row.messages), source=f"example:{row.pk}"))
            ids["examples"].append(row.pk)
    if data != "own":
        examples += _rehearsed(sources, ids)
    if excluded:
        ids["excluded"] = excluded
    return examples, ids


def _rehearsed(sources, ids: dict) -> list[TrainingText]:
    """MBPP train tasks in each asked-for form, their ids recorded under the form's snapshot key."""
    from django.conf import settings

    from engine.datasets.mbpp_rehearsal import rehearsal_messages, rehearsal_texts

    forms = {"mbpp": (rehearsal_texts, "text"), "mbpp-chat": (rehearsal_messages, "messages")}
    examples = []
    for source, key in REHEARSAL.items():
        if source not in sources:
            continue
        read, field = forms[source]
        ids[key] = []
        for task_id, content in read(settings.AUTODIDACT_BENCHMARK_DATA):
            examples.append(TrainingText(**{field: content}, source=f"{source}:{task_id}"))
            ids[key].append(task_id)
    return examples


def rehearsed_sources(dataset: dict | None) -> set[str]:
    """The `source` names of a snapshot's rehearsed MBPP examples (both forms)."""
    dataset = dataset or {}
    return {f"{source}:{i}" for source, key in REHEARSAL.items() for i in dataset.get(key, [])}


def new_since(dataset: dict | None) -> int:
    """Verified examples that appeared after a round's snapshot (for the scheduled trigger)."""
    last_attempt = max((dataset or {}).get("attempts") or [0])
    last_example = max(ledger_ids(dataset) or [0])
    return puzzle_pairs(last_attempt).count() + ledger_rows(last_example).count()


RL_SOURCES = ("mbpp", "p3", "chat")


def rl_tasks(sources=RL_SOURCES, limit: int = 0) -> list[dict]:
    """What an RL round learns from: tasks with tests or puzzles, and a right program for each (only
    the discriminator sees it). MBPP's train split (601-974) less what MBPP+ holds; puzzles with a verified solution that
    may be trained on (P3's train references, self-play pairs); the tasks of verified chat repairs
    (a conversation's problem and tests, once each, the repair as the reference). Whatever matches
    a test item is left out."""
    from django.conf import settings

    from engine.datasets.held_out import trainable_mbpp

    tasks, seen = [], set()
    if "mbpp" in sources:
        for task in trainable_mbpp(settings.AUTODIDACT_BENCHMARK_DATA):
            tasks.append({"task_id": f"mbpp:{task.task_id}", "text": task.text, "tests": task.tests,
                          "setup": task.setup, "source": f"mbpp:{task.task_id}", "reference": task.code})
    if "p3" in sources:  # puzzles with a verified, trainable solution (P3 train references, self-play pairs)
        index = held_out()
        for attempt in puzzle_pairs():
            if attempt.puzzle_id in seen or index.match_fingerprint(attempt.puzzle.fingerprint):
                continue
            seen.add(attempt.puzzle_id)
            tasks.append({"task_id": f"puzzle:{attempt.puzzle_id}", "kind": "puzzle", "sat": attempt.puzzle.sat,
                          "text": "", "tests": [], "setup": "", "source": f"puzzle:{attempt.puzzle_id}",
                          "reference": attempt.code})
    if "chat" in sources:
        tasks += verified_chat_tasks()
    return tasks[:limit or None]


def distill_examples(trace_ids: list[int] | None = None) -> tuple[list[TrainingText], list[int]]:
    """What a distill round learns from: the trainable teacher traces (kept by the sandbox, not
    rejected by a reviewer) as chat pairs, or exactly `trace_ids` of them (a resumed round's
    snapshot). Whatever matches a test item is left out, whatever its source says."""
    from engine.distill.traces import student_messages
    from webapp.distill.models import Trace

    rows = Trace.objects.trainable().order_by("id")
    if trace_ids is not None:
        rows = rows.filter(pk__in=trace_ids)
    index = held_out()
    examples, ids = [], []
    for trace in rows:
        messages = student_messages(trace.prompt, trace.reasoning, trace.code)
        if index.match("\n\n".join(m["content"] for m in messages)):
            continue
        examples.append(TrainingText(messages=tuple(messages), source=f"trace:{trace.pk}"))
        ids.append(trace.pk)
    return examples, ids
