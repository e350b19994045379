"""An OpenAI-compatible server for a local GGUF file (`llama_cpp.server`), started and stopped by
the product: so tests and offline users exercise the same teacher path as a vLLM or hosted
endpoint, end to end over HTTP.

    with LocalServer(path) as server:
        teacher = EndpointModel(Endpoint(server.url))
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path


class ServerFailed(RuntimeError):
    """The server did not come up; the message carries the end of its log."""


def _die_with_parent() -> None:
    """In the server's process, before it runs: the kernel stops it when the process that started it
    dies, however it dies (a killed worker must not leave a server holding a port and a model)."""
    import ctypes
    import signal

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class LocalServer:
    def __init__(self, gguf: str | Path, context: int = 4096, threads: int | None = None,
                 start_timeout_s: float = 180.0):
        self.gguf, self.context, self.threads = Path(gguf), context, threads or max(1, os.cpu_count() or 1)
        self.start_timeout_s = start_timeout_s
        self.port = 0
        self.process: subprocess.Popen | None = None
        self._log = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> LocalServer:
        if not self.gguf.is_file():
            raise ServerFailed(f"no GGUF file at {self.gguf}")
        self.port = free_port()
        self._log = tempfile.TemporaryFile()
        command = [sys.executable, "-m", "llama_cpp.server", "--model", str(self.gguf), "--host", "127.0.0.1",
                   "--port", str(self.port), "--n_ctx", str(self.context), "--n_threads", str(self.threads),
                   "--model_alias", self.gguf.stem]
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        preexec_fn=_die_with_parent if sys.platform == "linux" else None)
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerFailed(f"llama_cpp.server exited ({self.process.returncode}): {self._tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/models", timeout=2) as response:
                    if response.status == 200:
                        return self
            except (OSError, urllib.error.URLError):
                time.sleep(0.3)
        self.stop()
        raise ServerFailed(f"llama_cpp.server did not answer within {self.start_timeout_s:g} s: {self._tail()}")

    def _tail(self) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")[-1500:]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
