"""The model the `gpu` worker serves: loaded once per process, kept warm, its state reported.

Only the model worker (the solo `gpu` queue consumer) touches this. It loads at worker start
when AUTODIDACT_PRELOAD_MODEL is on (the default), otherwise on the first request.
"""
from __future__ import annotations

import logging
import threading
import time

from django.conf import settings

from engine.lm.loading import load_model
from engine.sandbox.verdict import short

log = logging.getLogger(__name__)


class ModelRuntime:
    def __init__(self):
        self._model = None
        self._lock = threading.Lock()
        self.state: dict = {"status": "not loaded"}

    def get(self):
        """The loaded model (loading it first if needed; concurrent callers wait for one load)."""
        with self._lock:
            if self._model is None:
                self.state = {"status": "loading", "since": time.time()}
                try:
                    model = load_model(settings.AUTODIDACT_MODEL, settings.AUTODIDACT_BACKEND,
                                       settings.AUTODIDACT_QUANTIZE)
                except Exception as exc:
                    self.state = {"status": "failed", "error": short(f"{type(exc).__name__}: {exc}", 300)}
                    log.exception("the model could not be loaded")
                    raise
                self._model = model
                self.state = {"status": "ready", "model": model.name, "device": model.device,
                              "backend": model.backend, "quantization": model.quantization,
                              "load_s": round(model.load_seconds, 1)}
                log.info("model %s ready on %s (%s) in %.1f s", model.name, model.device, model.backend,
                         model.load_seconds)
            return self._model

    def preload_in_background(self) -> None:
        def load():
            try:
                self.get()
            except Exception:  # already recorded in state and logged
                pass

        threading.Thread(target=load, name="model-preload", daemon=True).start()


runtime = ModelRuntime()
