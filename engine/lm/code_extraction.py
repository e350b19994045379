"""Getting code out of a model's reply: fenced blocks in chat answers, or a bare completion."""
from __future__ import annotations

import ast
import re

_FENCE = re.compile(r"^(?P<fence>`{3,}|~{3,})[ \t]*(?P<lang>[\w+.-]*)[^\n]*\n(?P<body>.*?)^(?P=fence)[ \t]*$",
                    re.M | re.S)
_OPEN_FENCE = re.compile(r"^(?P<fence>`{3,}|~{3,})[ \t]*(?P<lang>[\w+.-]*)[^\n]*\n(?P<body>.*)\Z", re.M | re.S)
PYTHON_TAGS = {"", "python", "py", "python3", "pycon"}


def fenced_blocks(text: str, languages=PYTHON_TAGS) -> list[str]:
    """Fenced code blocks, in order, whose language tag is one of `languages`. A block still open at
    the end (a reply cut by its token limit, or stopped) counts too: it is closed there."""
    blocks, end = [], 0
    for match in _FENCE.finditer(text):
        if match.group("lang").lower() in languages:
            blocks.append(match.group("body"))
        end = match.end()
    tail = _OPEN_FENCE.search(text, end)
    if tail and tail.group("lang").lower() in languages and tail.group("body").strip():
        blocks.append(tail.group("body").rstrip() + "\n")
    return blocks


def close_open_fence(text: str) -> str:
    """`text` with a fence still open at its end (a stopped or cut reply) closed, so markdown shows
    the code as code instead of a literal ``` and raw text."""
    end = 0
    for match in _FENCE.finditer(text):
        end = match.end()
    tail = _OPEN_FENCE.search(text, end)
    if tail is None:
        return text
    return text.rstrip("\n") + "\n" + tail.group("fence") + "\n"


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
        return True
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False


def extract_code(text: str, entry_point: str | None = None) -> str | None:
    """The code a chat reply offers: the first Python block defining `entry_point` (if given),
    else the first block that parses, else the last block; the whole reply if it parses as
    code itself; None if there is no code."""
    blocks = fenced_blocks(text)
    if entry_point:
        pattern = re.compile(rf"^\s*(async\s+)?def\s+{re.escape(entry_point)}\s*\(", re.M)
        for block in blocks:
            if pattern.search(block):
                return block.rstrip() + "\n"
    for block in blocks:
        if _parses(block):
            return block.rstrip() + "\n"
    if blocks:
        return blocks[-1].rstrip() + "\n"
    stripped = text.strip()
    if stripped and _parses(stripped) and ("def " in stripped or "return" in stripped or "=" in stripped):
        return stripped + "\n"
    return None


_DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
MAX_TRIMMED_LINES = 200


def _parsed_prefix(code: str) -> tuple[ast.Module, list[str]] | None:
    """The longest prefix of whole lines that parses (a reply cut at its token limit ends
    mid-statement), with its lines; None if no prefix does."""
    lines = code.split("\n")
    for end in range(len(lines), max(0, len(lines) - MAX_TRIMMED_LINES), -1):
        try:
            return ast.parse("\n".join(lines[:end])), lines[:end]
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
    return None


def _names_used(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def sanitize(code: str, entry_point: str | None = None, also=()) -> str:
    """What a benchmark runs of a reply's code, as EvalPlus's sanitizer does: the imports, and the
    functions, classes and top-level assignments the entry point reaches; the reply's own example
    calls, prints, asserts and `if __name__ == "__main__"` block are dropped (a wrong example of the
    model's would otherwise fail a right function). Without a known entry point every definition is
    kept, and `also` names what the tests use beside the entry point (kept with what they reach).
    Code that does not parse at all is returned as it is (the check reports the error)."""
    parsed = _parsed_prefix(code)
    if parsed is None:
        return code
    tree, lines = parsed
    defined: dict[str, list[ast.stmt]] = {}
    for node in tree.body:
        if isinstance(node, _DEFINITIONS):
            defined.setdefault(node.name, []).append(node)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for name in {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}:
                defined.setdefault(name, []).append(node)
    if entry_point and entry_point in defined:
        wanted, todo = set(), [entry_point, *also]
        while todo:
            name = todo.pop()
            if name in wanted or name not in defined:
                continue
            wanted.add(name)
            for node in defined[name]:
                todo.extend(_names_used(node) - wanted)
        keep = {id(node) for name in wanted for node in defined[name]}
    else:
        keep = {id(node) for nodes in defined.values() for node in nodes}
    parts = []
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)) or id(node) in keep:
            start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
            parts.append("\n".join(lines[start - 1:node.end_lineno]))
    return "\n\n".join(parts).rstrip() + "\n" if parts else code


def cut_at_dedent(completion: str) -> str:
    """A completion of an open `def ...(`: keep the body, up to the first non-indented line."""
    first, _, rest = completion.partition("\n")
    return (first + "\n" + indented_prefix(rest)).rstrip() + "\n"


def indented_prefix(text: str) -> str:
    """`text` up to its first non-empty line that starts at the margin (a function body's end)."""
    kept = []
    for line in text.split("\n"):
        if line.strip() and not line[0].isspace():
            break
        kept.append(line)
    return "\n".join(kept)
