"""Model specs resolve to loadable parts: the packaged default, local checkpoints, GGUF files, hub ids."""
import json
import subprocess
import sys

import pytest

from engine.lm.model_source import ModelNotFound, resolve_model_source


def test_default_is_the_packaged_smollm2_gguf():
    source = resolve_model_source("")
    assert source.kind == "packaged-gguf"
    assert source.gguf_file.endswith(".gguf")
    assert source.display_name == "SmolLM2-135M-Instruct"


def test_local_checkpoint_directory(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    source = resolve_model_source(str(tmp_path))
    assert (source.kind, source.path, source.gguf_file) == ("local-dir", str(tmp_path), None)


def test_gguf_file_and_directory_with_one_gguf(tmp_path):
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    assert resolve_model_source(str(tmp_path / "m.gguf")).gguf_file == "m.gguf"
    assert resolve_model_source(str(tmp_path)).kind == "local-gguf"


def test_hub_ids_are_accepted_without_network():
    source = resolve_model_source("HuggingFaceTB/SmolLM2-360M-Instruct")
    assert (source.kind, source.path) == ("hub", "HuggingFaceTB/SmolLM2-360M-Instruct")


@pytest.mark.parametrize("spec", ["./missing-dir", "/no/such/model", "not a model id!"])
def test_bad_specs_say_what_is_wrong(spec):
    with pytest.raises(ModelNotFound, match="no such file"):
        resolve_model_source(spec)


def test_directory_without_weights_is_refused(tmp_path):
    with pytest.raises(ModelNotFound, match="config.json"):
        resolve_model_source(str(tmp_path))


def test_command_line(tmp_path):
    out = subprocess.run([sys.executable, "-m", "engine.lm.model_source"], capture_output=True, text=True)
    assert out.returncode == 0 and json.loads(out.stdout)["kind"] == "packaged-gguf"
    bad = subprocess.run([sys.executable, "-m", "engine.lm.model_source", str(tmp_path / "x")],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "error:" in bad.stderr
