"""Durable writes: fsync a file, a folder's entry list, or a whole tree, so a rename that makes
something visible (a sealed checkpoint, a published model version) is never followed, after a
crash, by files that are missing or short."""
from __future__ import annotations

import os
from pathlib import Path


def fsync_path(path: Path) -> None:
    """One file's data, or one directory's entries."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def fsync_tree(folder: Path) -> None:
    """Every file under `folder`, then `folder` itself."""
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            fsync_path(path)
    fsync_path(folder)
