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
