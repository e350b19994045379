"""The models the model workers serve: loaded once per runtime, kept warm, their state reported.

Only the model workers (the solo `gpu` and `chat` queue consumers) touch this. Each queue has a
runtime of its own (`for_queue`), so in embedded mode, where both workers are threads of one
process, a chat reply never waits for the lock of a model a generation step is using. A process
that serves one queue (server mode) loads only that queue's runtime. Models load at worker start
when AUTODIDACT_PRELOAD_MODEL is on (the default), otherwise on the first request.

The chat runtime serves a model as configured (the packaged 4-bit GGUF: fastest for one reply at a
time). The gpu runtime's jobs sample in batches and their samples are kept and counted (puzzles,
solutions), so it serves the full-precision copy unless AUTODIDACT_QUANTIZE asks otherwise: with
llama.cpp on a CPU the f16 weights also decode a batch faster than the Q4_1 ones
(docs/experiments.md, "Puzzle writing at full precision").
"""
from __future__ import annotations

import atexit
import logging
import threading
import time
from typing import NamedTuple

from django.conf import settings

from engine.lm.generation import LanguageModel
from engine.lm.loading import load_model
from engine.sandbox.verdict import short
from webapp.serving.model_store import load_batch_version, local_spec

log = logging.getLogger(__name__)


def serving_target() -> dict:
    """{"id", "spec", "name"} of the model to serve: the active model version (a promotion or a
    rollback changes it), or the configured model while the training tables do not exist yet."""
    try:
        from webapp.serving.versions import active_serving

        return active_serving()
    except Exception:  # noqa: BLE001 - no database or no migrations yet: serve the configured model
        return {"id": None, "spec": settings.AUTODIDACT_MODEL, "name": ""}


class Served(NamedTuple):
    """A loaded model and the id of the version it was loaded as (None: the configured model, before
    the serving tables exist). Records that a model wrote store that id (`versions.attributable`)."""

    model: LanguageModel
    version_id: int | None


def close_model(model) -> None:
    """Free a model now (a no-op for models without `close`)."""
    close = getattr(model, "close", None)
    if close is not None:
        try:
            close()
        except Exception:
            log.warning("the model did not close cleanly", exc_info=True)


class ModelRuntime:
    def __init__(self, full_precision: bool = False):
        self.full_precision = full_precision  # the served model unquantised (unless AUTODIDACT_QUANTIZE is set)
        self._served: Served | None = None
        self._serving: tuple | None = None  # (version id, spec) of the loaded model
        self._failed: tuple | None = None  # a target that would not load (not retried until it changes)
        self._swapping = False
        self._lock = threading.Lock()
        self._other: tuple[str, Served] | None = None  # (spec, model) a conversation picked
        self._other_lock = threading.Lock()
        self.state: dict = {"status": "not loaded"}
        self.other_state: dict = {}  # the picked model's load (what `report` shows while no served model is)

    def _load(self, target: dict) -> Served:
        if self.full_precision and settings.AUTODIDACT_QUANTIZE in ("", "none"):
            model = load_batch_version(target["spec"])
        else:
            model = load_model(local_spec(target["spec"]), settings.AUTODIDACT_BACKEND, settings.AUTODIDACT_QUANTIZE)
        log.info("model %s (%s) ready on %s (%s) in %.1f s", model.name, target.get("name") or "configured",
                 model.device, model.backend, model.load_seconds)
        return Served(model, target["id"])

    def _ready(self, served: Served, target: dict) -> None:
        self._served, self._serving = served, (target["id"], target["spec"])
        model = served.model
        self.state = {"status": "ready", "model": model.name, "device": model.device, "backend": model.backend,
                      "quantization": model.quantization, "load_s": round(model.load_seconds, 1),
                      "version": target.get("name", "")}

    def get(self) -> Served:
        """The loaded model and its version (loading it first if needed; concurrent callers wait for one load).
        When the active version has changed (a promotion or rollback), the new one is loaded
        while the old one keeps answering, then replaces it: a hot swap without a restart. If
        it fails to load, the old model keeps serving and the error shows in `state`."""
        target = serving_target()
        wanted = (target["id"], target["spec"])
        with self._lock:
            if self._served is None:
                self.state = {"status": "loading", "since": time.time()}
                try:
                    self._ready(self._load(target), target)
                except Exception as exc:
                    self.state = {"status": "failed", "error": short(f"{type(exc).__name__}: {exc}", 300)}
                    log.exception("the model could not be loaded")
                    raise
                return self._served
            if wanted in (self._serving, self._failed) or self._swapping:
                return self._served
            self._swapping = True
            self.state = {**self.state, "swapping_to": target.get("name", "")}
        try:
            served = self._load(target)
        except Exception as exc:
            log.exception("the model version %r could not be loaded; the previous one keeps serving", target)
            with self._lock:
                self._failed, self._swapping = wanted, False
                self.state = {**{k: v for k, v in self.state.items() if k != "swapping_to"},
                              "swap_error": short(f"{type(exc).__name__}: {exc}", 300)}
            return self._served
        with self._lock:
            self._ready(served, target)
            self._swapping = False
            return self._served

    def swap_if_changed(self) -> None:
        """From the worker's heartbeat: start loading a newly active version in the background,
        so that the first request after a promotion does not wait for it."""
        if self._served is None or self._swapping:
            return
        target = serving_target()
        if (target["id"], target["spec"]) not in (self._serving, self._failed):
            self.preload_in_background()

    def get_other(self, spec: str, version_id: int | None) -> Served:
        """A model other than the served one, for a conversation that picked it. One such model is
        kept loaded beside the served one; asking for another replaces it (memory stays bounded)."""
        with self._other_lock:
            if self._other is not None and self._other[0] == spec:
                return self._other[1]
            previous, self._other = self._other, None
            if previous is not None:
                close_model(previous[1].model)
            self.other_state = {"status": "loading", "since": time.time()}
            try:
                model = load_model(local_spec(spec), settings.AUTODIDACT_BACKEND, settings.AUTODIDACT_QUANTIZE)
            except Exception as exc:
                self.other_state = {"status": "failed", "error": short(f"{type(exc).__name__}: {exc}", 300)}
                log.exception("the chat model %r could not be loaded", spec)
                raise
            served = Served(model, version_id)
            log.info("chat model %s (%s) ready in %.1f s", model.name, model.backend, model.load_seconds)
            self.other_state = {"status": "ready", "model": model.name, "device": model.device,
                                "backend": model.backend, "quantization": model.quantization,
                                "load_s": round(model.load_seconds, 1)}
            self._other = (spec, served)
            return served

    def report(self) -> dict:
        """The state a heartbeat publishes: the served model's, or, on a chat worker whose picked
        model is all it has loaded, that model's."""
        return self.other_state if self._served is None and self.other_state else self.state

    def serve_choice(self, spec: str | None, version_id: int | None = None) -> Served:
        """A conversation's pick (None or the served spec: the served model, not loaded twice)."""
        if spec is None or spec == serving_target()["spec"]:
            return self.get()
        return self.get_other(spec, version_id)

    def close(self) -> None:
        """Free the served model before the process exits (a no-op for models without `close`)."""
        with self._lock:
            served, self._served, self._serving = self._served, None, None
            self.state = {"status": "not loaded"}
        with self._other_lock:
            other, self._other = self._other, None
            self.other_state = {}
        for model in [served.model if served else None, other[1].model if other else None]:
            close_model(model)

    def preload_in_background(self, load=None) -> None:
        """`load` (default: the served model) on a thread of its own."""
        def run():
            try:
                (load or self.get)()
            except Exception:  # already recorded in state and logged
                pass

        threading.Thread(target=run, name="model-preload", daemon=True).start()


runtime = ModelRuntime(full_precision=True)  # the `gpu` queue's: long jobs (and chat replies where they go to `gpu`)
chat_runtime = ModelRuntime()  # the `chat` queue's: replies a person waits on
atexit.register(runtime.close)
atexit.register(chat_runtime.close)


def for_queue(queue: str | None) -> ModelRuntime:
    """The runtime of the queue a task came from (`chat`, else the gpu runtime)."""
    return chat_runtime if queue == "chat" else runtime
