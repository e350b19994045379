"""This deployment's model store (AUTODIDACT_MODEL_STORE, engine/lm/model_store.py): training rounds
publish their sealed versions to it, and every loader turns a version's `store:` spec into a checked
local folder on its own host, so a version trained on one GPU host loads on any other."""
from __future__ import annotations

import functools
from pathlib import Path

from django.conf import settings

from engine.lm import model_store


def store() -> model_store.ModelStore:
    return _opened(settings.AUTODIDACT_MODEL_STORE, str(settings.MODEL_CACHE_DIR))


@functools.lru_cache(maxsize=4)
def _opened(location: str, cache_dir: str) -> model_store.ModelStore:
    return model_store.open_store(location, cache_dir)


def publish(folder: Path, key: str) -> str:
    """Publish a sealed version folder as `key`; the spec any host resolves it by."""
    return store().put(folder, key)


def local_spec(spec: str) -> str:
    """What the model loaders are given for `spec`: a `store:` spec fetched to a checked local folder
    (StoreError if it is missing or damaged); any other spec (a local path, a hub id, "") as it is."""
    key = model_store.key_of(spec)
    return spec if key is None else str(store().fetch(key))


def load_full_precision_version(spec: str, backend: str | None = None, weights: str = "f16"):
    """`spec` loaded for work whose samples are counted or trained on (evaluations, studies, puzzle
    writing), never quantised: on llama.cpp through its checked `weights` copy, made once in the data dir."""
    from engine.lm.loading import load_full_precision

    return load_full_precision(local_spec(spec), backend or settings.AUTODIDACT_BACKEND,
                               str(Path(settings.DATA_DIR) / "models" / "full-precision"), weights)


def load_batch_version(spec: str, backend: str | None = None):
    """`spec` for puzzle writing and solving (many samples a step): the packaged model's bf16 copy
    where llama.cpp has bf16 kernels, else f16 (AUTODIDACT_BATCH_WEIGHTS; engine.lm.loading.batch_weights)."""
    from engine.lm.loading import batch_weights

    return load_full_precision_version(spec, backend, batch_weights(settings.AUTODIDACT_BATCH_WEIGHTS))


def published(spec: str) -> bool:
    """Whether the store holds version `spec` whole (its manifest; the files are checked on fetch)."""
    return store().published(model_store.key_of(spec))
