"""Several hosts share a model store, not a data dir: a version that one `gpu` worker trained and
sealed is published to the store, and another `gpu` worker with a data dir of its own (another
host) loads it from there and generates with it. Real PostgreSQL, Redis and Celery workers; the
store is a folder and a file:// URL (fsspec). A half-published or damaged version is refused with a
message that says so, never loaded."""
import json
import shutil
import threading
from pathlib import Path

import pytest

from engine.lm import model_store
from engine.lm.model_store import MANIFEST, StoreError, open_store
from tests import test_training_rounds as sft_rounds
from tests.support import start_worker, stop_worker
from tests.test_training_rounds import TINY_ROUND, finished, purge_stale_messages, round_state, wait_for
from webapp.configuration import ConfigurationError, model_store_location
from webapp.core.tasks import gpu_sample
from webapp.serving import versions
from webapp.serving.model_runtime import ModelRuntime
from webapp.serving.model_worker import read_state
from webapp.serving.models import ModelVersion
from webapp.training import rounds

tiny_model, worker_env = sft_rounds.tiny_model, sft_rounds.worker_env
# The cheapest round that seals a version: two steps, one P3 puzzle sampled once, no code benchmark.
QUICK_ROUND = {**TINY_ROUND, "sft": {**TINY_ROUND["sft"], "max_steps": 2}, "code_problems": 0,
               "p3_eval": {"samples": 1, "subset": 1, "max_tokens": 4}}


@pytest.fixture
def seeded(db, settings, tiny_model):
    """The seeds' verified pairs to train on, and the tiny model as v0."""
    from webapp.puzzles.catalogue import import_seeds
    from webapp.puzzles.models import Attempt

    if not Attempt.objects.exists():
        import_seeds()
    settings.AUTODIDACT_MODEL = tiny_model
    versions.forget_active()
    yield
    versions.forget_active()


def _holds(folder: Path, name: str) -> list[Path]:
    return [p for p in folder.rglob("*") if name in p.as_posix()] if folder.exists() else []


@pytest.mark.timeout(300)
@pytest.mark.parametrize("kind", ["folder", "url"])
@pytest.mark.django_db(transaction=True)
def test_a_version_one_gpu_worker_sealed_loads_on_a_host_with_another_data_dir(kind, seeded, worker_env, tmp_path,
                                                                                settings):
    store = str(tmp_path / "store") if kind == "folder" else f"file://{tmp_path / 'store'}"
    settings.AUTODIDACT_MODEL_STORE = store  # the web host (this process) shares the store too
    host_a, host_b = tmp_path / "host-a", tmp_path / "host-b"
    env = {**worker_env, "AUTODIDACT_MODEL_STORE": store, "AUTODIDACT_PRELOAD_MODEL": "0"}
    purge_stale_messages()
    trainer, output = start_worker("gpu-a", "gpu", "solo", {**env, "AUTODIDACT_DATA_DIR": str(host_a)})
    try:
        run = rounds.start_round(None, QUICK_ROUND)
        run = wait_for(lambda: finished(run.pk), 200, "the round on host A", lambda: round_state(run.pk, output))
    finally:
        stop_worker(trainer)
    assert run.status == "succeeded", run.error
    version = run.produced_version
    key = f"round-{run.pk}/model"
    assert version.checkpoint == f"store:{key}" and version.is_active, (version.checkpoint, run.decision)
    assert f"published the trained model to the model store as store:{key}" in run.log
    assert (tmp_path / "store" / key / MANIFEST).is_file()
    # Host A's own folders are not reachable from host B: remove them to be sure B never reads them.
    shutil.rmtree(host_a / "models" / f"round-{run.pk}")
    shutil.rmtree(host_a / "model-cache", ignore_errors=True)
    assert not _holds(host_b, f"round-{run.pk}")

    server, output = start_worker("gpu-b", "gpu", "solo", {**env, "AUTODIDACT_DATA_DIR": str(host_b),
                                                            "AUTODIDACT_PRELOAD_MODEL": "1"})
    try:
        wait_for(lambda: (lambda s: s.get("hostname", "").startswith("gpu-b@")
                          and s.get("runtime", {}).get("version") == version.name)(read_state()),
                 90, "host B to load the version", lambda: "".join(output.lines[-40:]))
        [[completion]] = gpu_sample.delay(["def add(a, b):"], 1, {"max_new_tokens": 4}).get(timeout=60)
    finally:
        stop_worker(server)
    assert completion["tokens"] >= 1 and completion["finish_reason"] in ("length", "eos")
    cached = host_b / "model-cache" / key
    if kind == "url":  # fetched into B's own cache, checked against the manifest
        assert (cached / MANIFEST).is_file() and (cached / "config.json").is_file()
    else:  # loaded where it lies in the shared folder: nothing copied
        assert not _holds(host_b, f"round-{run.pk}")


def _published(tmp_path: Path, location: str, tiny_model: str, key: str = "round-7/model"):
    """A sealed tiny model published as `key`: the store and its spec."""
    model = Path(shutil.copytree(tiny_model, tmp_path / "sealed" / "model"))
    (model / "COMPLETE").write_text("ok\n")
    store = open_store(location, tmp_path / "cache")
    return store, store.put(model, key)


@pytest.mark.parametrize("kind", ["folder", "url"])
def test_a_damaged_or_half_published_version_is_refused_not_loaded(kind, tmp_path, tiny_model):
    root = tmp_path / "store"
    location = str(root) if kind == "folder" else f"file://{root}"
    store, spec = _published(tmp_path, location, tiny_model)
    version = root / "round-7" / "model"
    weights = next(version.glob("*.safetensors"))
    good = weights.read_bytes()
    weights.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))  # one bit flipped, same size
    reader = open_store(location, tmp_path / "another-host-cache")
    with pytest.raises(StoreError, match=rf"{weights.name} does not match its SHA-256 in the manifest; "
                                         "the version is damaged, so it is not loaded"):
        reader.fetch("round-7/model")
    weights.write_bytes(good[: len(good) // 2])  # an upload cut short
    with pytest.raises(StoreError, match=rf"{weights.name} has {len(good) // 2} bytes, its manifest says {len(good)}"):
        reader.fetch("round-7/model")
    (version / MANIFEST).unlink()  # files there, manifest not yet: half published
    with pytest.raises(StoreError, match=r"round-7/model is not published in the model store .* \(no manifest\.json"):
        reader.fetch("round-7/model")
    assert not reader.published("round-7/model")
    cache = tmp_path / "another-host-cache"  # nothing damaged reached the cache, no debris was left
    assert not (cache / "round-7").exists() and not any((cache / ".partial").glob("*"))
    weights.write_bytes(good)
    assert store.put(tmp_path / "sealed" / "model", "round-7/model") == spec  # published again, whole
    assert (reader.fetch("round-7/model") / weights.name).read_bytes() == good


@pytest.mark.django_db
def test_the_site_refuses_to_promote_or_serve_a_version_the_store_does_not_hold_whole(tmp_path, settings, tiny_model):
    settings.AUTODIDACT_MODEL_STORE = str(tmp_path / "store")
    store, spec = _published(tmp_path, settings.AUTODIDACT_MODEL_STORE, tiny_model)
    damaged = ModelVersion.objects.create(name="v1 · damaged", parent=versions.active_version(), checkpoint=spec)
    half = ModelVersion.objects.create(name="v2 · half", parent=damaged, checkpoint="store:round-8/model")
    with pytest.raises(ValueError, match="missing or incomplete"):  # no manifest: never promoted
        versions.promote(half, "by hand")
    versions.promote(damaged, "by hand")  # whole when promoted, damaged after
    weights = next((tmp_path / "store" / "round-7" / "model").glob("*.safetensors"))
    weights.write_bytes(b"\0" * weights.stat().st_size)
    runtime = ModelRuntime()
    try:
        versions.forget_active()
        with pytest.raises(StoreError, match="does not match its SHA-256"):
            runtime.get()
        assert runtime.state["status"] == "failed" and "damaged, so it is not loaded" in runtime.state["error"]
    finally:
        runtime.close()
        versions.forget_active()


def test_one_process_downloads_a_version_while_the_others_wait_for_it(tmp_path, monkeypatch, tiny_model):
    from fsspec.implementations.local import LocalFileSystem

    location = f"file://{tmp_path / 'store'}"
    _published(tmp_path, location, tiny_model)
    downloads, folders, barrier = [], [], threading.Barrier(4)
    real_get = LocalFileSystem.get_file
    monkeypatch.setattr(LocalFileSystem, "get_file",
                        lambda fs, remote, local, **kw: (downloads.append(remote), real_get(fs, remote, local, **kw)))

    def fetch():  # each thread is a process of host B: its own store object, the host's one cache
        reader = open_store(location, tmp_path / "host-b-cache")
        barrier.wait()
        folders.append(reader.fetch("round-7/model"))

    threads = [threading.Thread(target=fetch) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    files = json.loads((tmp_path / "store" / "round-7" / "model" / MANIFEST).read_text())["files"]
    assert len(folders) == 4 and set(folders) == {tmp_path / "host-b-cache" / "round-7" / "model"}
    assert sorted(downloads) == sorted(f"{tmp_path}/store/round-7/model/{name}" for name in files)  # each once


def test_the_default_store_is_the_data_dirs_models_folder_and_publishes_in_place(tmp_path, monkeypatch, tiny_model):
    monkeypatch.delenv("AUTODIDACT_MODEL_STORE", raising=False)
    assert model_store_location(tmp_path) == str(tmp_path / "models")
    sealed = Path(shutil.copytree(tiny_model, tmp_path / "models" / "round-3" / "model"))
    store = open_store(model_store_location(tmp_path), tmp_path / "model-cache")
    assert store.put(sealed, "round-3/model") == "store:round-3/model"
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["round-3"]  # no copy, only a manifest
    assert store.fetch("round-3/model") == sealed
    monkeypatch.setenv("AUTODIDACT_MODEL_STORE", "nosuch://bucket/models")
    with pytest.raises(ConfigurationError, match="AUTODIDACT_MODEL_STORE='nosuch://bucket/models': nosuch:// is not"):
        model_store_location(tmp_path)
    monkeypatch.setenv("AUTODIDACT_MODEL_STORE", "file:///srv/models")
    assert model_store_location(tmp_path) == "file:///srv/models"
    assert model_store.key_of("store:round-3/model") == "round-3/model" and model_store.key_of(str(sealed)) is None
    with pytest.raises(StoreError, match="is not a model store key"):
        model_store.key_of("store:../../etc")
