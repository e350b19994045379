"""Structural match of a program against the task's reference: CodeBLEU's syntax match and
data-flow match (Ren et al. 2020), as the structure-aware distillation paper reports them, from the
maintained `codebleu` package (tree-sitter's Python grammar).

- **syntax match**: the share of the reference's syntax subtrees (every node with children, as an
  S-expression of node types: names and literals do not count) found among the program's;
- **data-flow match**: the share of the reference's data-flow edges (variables renamed var_0,
  var_1, … in order of appearance; "comesFrom" / "computedFrom" relations) found among the
  program's, each used once. A reference without data flow gives None (left out of averages,
  where CodeBLEU would score 0 and warn).

Comments and docstrings are removed first. A sample without code scores 0 on both.
"""
from __future__ import annotations

import functools
import logging


@functools.cache
def _parsers():
    from codebleu.dataflow_match import dfg_function
    from codebleu.utils import get_tree_sitter_language
    from tree_sitter import Parser

    parser = Parser()
    parser.language = get_tree_sitter_language("python")
    return parser, [parser, dfg_function["python"]]


def _clean(code: str) -> str:
    from codebleu.parser import remove_comments_and_docstrings

    try:
        return remove_comments_and_docstrings(code, "python")
    except Exception:  # noqa: BLE001 - codebleu's own fallback: the code as it is
        return code


def _subtrees(code: str) -> list[str]:
    parser, _ = _parsers()
    found, stack = [], [parser.parse(code.encode("utf8")).root_node]
    while stack:
        node = stack.pop()
        found.append(str(node))
        stack.extend(child for child in node.children if child.children)
    return found


def syntax_match(program: str, reference: str) -> float:
    if not program:
        return 0.0
    ours, theirs = _subtrees(_clean(program)), _subtrees(_clean(reference))
    return sum(1 for tree in theirs if tree in ours) / len(theirs) if theirs else 0.0


def _data_flow(code: str) -> list:
    from codebleu.dataflow_match import get_data_flow, normalize_dataflow

    _, parser = _parsers()
    return normalize_dataflow(get_data_flow(code, parser))


def dataflow_match(program: str, reference: str) -> float | None:
    theirs = _data_flow(_clean(reference))
    if not theirs:
        return None
    if not program:
        return 0.0
    ours, matched = _data_flow(_clean(program)), 0
    for edge in theirs:
        if edge in ours:
            matched += 1
            ours.remove(edge)
    return matched / len(theirs)


def structure(program: str | None, reference: str | None) -> dict | None:
    """{"syntax_match", "dataflow_match"} of `program` against `reference` (None without a reference)."""
    if not reference:
        return None
    logging.getLogger("codebleu").setLevel(logging.ERROR)
    return {"syntax_match": round(syntax_match(program or "", reference), 4),
            "dataflow_match": None if (found := dataflow_match(program or "", reference)) is None else round(found, 4)}


PARTS = ("syntax_match", "dataflow_match")


def _part_values(samples: list[dict], part: str) -> list[float]:
    return [s["structure"][part] for s in samples if s.get("structure") and s["structure"].get(part) is not None]


def mean_structure(samples: list[dict]) -> dict:
    """The average of each part over the samples that have it (the paper's "average ... match")."""
    out = {}
    for part in PARTS:
        values = _part_values(samples, part)
        if values:
            out[part] = round(sum(values) / len(values), 4)
    return out


def structure_by_task(rows: list[dict]) -> dict[str, dict[str, float]]:
    """{part: {task_id: the mean over that task's samples}} of a suite run's rows, for pairing two
    runs task by task (engine.evaluate.paired.compare_scores); tasks without the part are left out."""
    out: dict[str, dict[str, float]] = {part: {} for part in PARTS}
    for row in rows:
        for part in PARTS:
            values = _part_values(row.get("samples") or [], part)
            if values:
                out[part][row["task_id"]] = sum(values) / len(values)
    return {part: by_task for part, by_task in out.items() if by_task}
