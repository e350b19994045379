"""Run the Procfile's processes as children of the main job, and stop them all on Ctrl-C.

Each child gets its own process group, so stopping it also stops anything it spawned
(Celery's pool processes, sandbox runs): no orphans survive the main job.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

_LINE = re.compile(r"^([A-Za-z0-9_-]+):\s*(.+)$")


def read_procfile(path: Path) -> dict[str, str]:
    """`name: command` lines, in order; comments and blank lines ignored."""
    entries: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if not match:
            raise ValueError(f"{path}:{number}: expected 'name: command', got {raw!r}")
        entries[match.group(1)] = match.group(2)
    return entries


class Supervisor:
    def __init__(self, commands: dict[str, str], env: dict[str, str], grace_s: float = 20.0, out=None):
        self.commands = commands
        self.env = env
        self.grace_s = grace_s
        self.out = out or sys.stdout
        self.children: dict[str, subprocess.Popen] = {}
        self._stop = threading.Event()
        self._print_lock = threading.Lock()
        width = max(map(len, commands), default=0)
        self._label = {name: name.ljust(width) for name in commands}

    def _say(self, name: str, line: str) -> None:
        with self._print_lock:
            self.out.write(f"{self._label.get(name, name)} | {line.rstrip()}\n")
            self.out.flush()

    def _pump(self, name: str, stream) -> None:
        for line in iter(stream.readline, ""):
            self._say(name, line)
        stream.close()

    def start(self) -> None:
        for name, command in self.commands.items():
            child = subprocess.Popen(
                ["/bin/sh", "-c", f"exec {command}"],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                bufsize=1,
                start_new_session=True,
            )
            self.children[name] = child
            threading.Thread(target=self._pump, args=(name, child.stdout), daemon=True).start()
            self._say(name, f"started (pid {child.pid}): {command}")

    def request_stop(self, *_args) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def wait(self) -> int:
        """Block until Ctrl-C/SIGTERM or until a child exits; then stop all. Returns an exit code."""
        code = 0
        while not self._stop.wait(0.2):
            for name, child in self.children.items():
                if child.poll() is not None:
                    self._say(name, f"exited with code {child.returncode}; stopping the others")
                    code = child.returncode or 1
                    self._stop.set()
                    break
        self.stop_all()
        return code

    def _signal_groups(self, sig: int) -> None:
        for child in self.children.values():
            try:
                os.killpg(child.pid, sig)
            except ProcessLookupError:
                pass

    def stop_all(self) -> None:
        self._signal_groups(signal.SIGTERM)
        deadline = time.monotonic() + self.grace_s
        for name, child in self.children.items():
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._say(name, f"did not stop within {self.grace_s:.0f} s; killing it")
        # Whatever is left in any group (a stuck leader, or grandchildren): SIGKILL.
        self._signal_groups(signal.SIGKILL)
        for child in self.children.values():
            child.wait()
