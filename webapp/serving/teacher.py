"""The teacher that writes puzzles (the paper's Codex role): the OpenAI-compatible endpoint in
settings, or, where none is set, the packaged Qwen2.5-Coder GGUF (the 1.5B where fetched, else the
0.5B) served by a llama.cpp server this process starts once and stops at exit."""
from __future__ import annotations

import atexit
import threading

from django.conf import settings

from engine.lm.local_server import LocalServer
from engine.lm.model_source import ModelNotFound
from engine.lm.openai_endpoint import Endpoint, EndpointModel
from engine.lm.packaged_models import installed

DEFAULT_TEACHERS = ("qwen2.5-coder-1.5b-instruct", "qwen2.5-coder-0.5b-instruct")
_lock = threading.Lock()
_teacher: dict = {}


def default_teacher_file():
    for name in DEFAULT_TEACHERS:
        path = installed(name)
        if path is not None:
            return path
    raise ModelNotFound("no teacher: set AUTODIDACT_TEACHER_URL, or fetch a packaged one with "
                        "`python -m engine.lm.packaged_models fetch qwen2.5-coder-0.5b-instruct`")


def teacher_model() -> EndpointModel:
    """The teacher, connected (and its local server started) on first use."""
    with _lock:
        server = _teacher.get("server")
        if server is not None and (server.process is None or server.process.poll() is not None):
            _teacher.clear()  # its server died (it dies with the thread that started it): start another
        if "model" not in _teacher:
            url, name = settings.AUTODIDACT_TEACHER_URL, settings.AUTODIDACT_TEACHER_MODEL
            if not url:
                server = LocalServer(default_teacher_file()).start()
                atexit.register(server.stop)
                _teacher["server"], url, name = server, server.url, server.gguf.stem
            _teacher["model"] = EndpointModel(Endpoint(url, name,
                                                       settings.AUTODIDACT_TEACHER_KEY,
                                                       parallel=settings.AUTODIDACT_TEACHER_PARALLEL))
        return _teacher["model"]


def close() -> None:
    with _lock:
        server = _teacher.pop("server", None)
        _teacher.pop("model", None)
    if server is not None:
        server.stop()
