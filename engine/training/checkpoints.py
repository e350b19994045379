"""Checkpoints that are either whole or absent.

The Trainer writes each checkpoint into `staging/`; only once every file is written and fsynced
is the folder renamed (one atomic `rename` on the same filesystem) into `checkpoints/`. A crash
mid-save leaves debris in `staging/`, which is cleared on the next start and never loaded. The
final model goes through the same two steps into `model/`.
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from engine.durable import fsync_path, fsync_tree

_STEP = re.compile(r"^checkpoint-(\d+)$")
COMPLETE = "COMPLETE"  # written last inside a finished folder, a second witness besides the rename


def seal(source: Path, target: Path) -> Path:
    """Make `source` durable, mark it complete and move it to `target` atomically (an older
    `target` is replaced)."""
    (source / COMPLETE).write_text("ok\n")
    fsync_tree(source)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        old = target.with_name(target.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
        os.replace(source, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(source, target)
    fsync_path(target.parent)
    return target


def is_complete(folder: str | Path) -> bool:
    return (Path(folder) / COMPLETE).is_file()


class CheckpointDir:
    """The folders of one training run: staging/, checkpoints/checkpoint-<step>/ and model/."""

    def __init__(self, root: str | Path, keep: int = 2):
        self.root = Path(root)
        self.staging = self.root / "staging"
        self.checkpoints = self.root / "checkpoints"
        self.model = self.root / "model"
        self.keep = keep

    def clear_staging(self) -> None:
        """Debris of a save that a crash interrupted: never loaded, removed before training."""
        shutil.rmtree(self.staging, ignore_errors=True)
        self.staging.mkdir(parents=True, exist_ok=True)

    def seal_staged(self, step: int) -> Path:
        """Called once the Trainer has finished writing staging/checkpoint-<step>."""
        sealed = seal(self.staging / f"checkpoint-{step}", self.checkpoints / f"checkpoint-{step}")
        self.prune()
        return sealed

    def completed(self) -> list[Path]:
        if not self.checkpoints.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.checkpoints.iterdir()
                 if (m := _STEP.match(p.name)) and is_complete(p)]
        return [p for _, p in sorted(found)]

    def latest(self) -> Path | None:
        done = self.completed()
        return done[-1] if done else None

    def prune(self) -> None:
        for old in self.completed()[:-self.keep]:
            shutil.rmtree(old, ignore_errors=True)

    def final_model(self) -> Path | None:
        return self.model if is_complete(self.model) else None
