"""Where an export command's JSON lines go: a file, or the command's standard output."""
from __future__ import annotations

from collections.abc import Iterable


def write_lines(lines: Iterable[str], output: str | None, stdout) -> int:
    """Write each line (already ending in a newline) to `output` ("-" or None: `stdout`); returns the count."""
    to_file = output not in (None, "", "-")
    stream = open(output, "w", encoding="utf-8") if to_file else stdout
    count = 0
    try:
        for line in lines:
            if to_file:
                stream.write(line)
            else:
                stream.write(line, ending="")  # a management command's OutputWrapper
            count += 1
    finally:
        if to_file:
            stream.close()
    return count
