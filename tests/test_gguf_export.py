"""GGUF copies of models, so llama.cpp serves every version at full precision: the packaged Q4_1
model's f16 copy agrees with the dequantised model transformers loads (logits and greedy tokens),
a trained checkpoint's copy is found and served by llama.cpp, and the check catches a copy that
does not match its checkpoint."""
import json

import pytest
import torch

from engine.lm import llama_cpp_backend
from engine.lm.gguf_export import (
    MAX_LOGIT_DIFF,
    REPORT,
    ExportError,
    agreement,
    export_checked,
    full_precision_copy,
    served_copy,
)
from engine.lm.loading import choose_backend, load_full_precision, load_model
from engine.lm.model_source import resolve_model_source
from engine.lm.prompt_tokens import encode_prompt
from engine.lm.tiny import build_tiny_model
from engine.training.sft import load_for_training
from tests.support import require_llama_cpp

pytestmark = pytest.mark.timeout(600)  # each check loads the model in both backends: minutes on a busy CPU


@pytest.fixture(scope="module")
def f16_copy(tmp_path_factory):
    require_llama_cpp()
    return full_precision_copy("", tmp_path_factory.mktemp("copies"))


@pytest.fixture(scope="module")
def dequantised():
    return load_for_training("", "cpu")  # the packaged model in fp32, as a round starts from it


def test_the_packaged_model_has_an_f16_copy_that_agrees_with_it(f16_copy):
    report = json.loads(f16_copy.with_name(f16_copy.name + ".json").read_text())
    assert report["passed"] and report["prompts"] == 5
    assert report["max_abs_logit_diff"] < 0.2  # measured 0.043: f16 rounding only
    assert report["top1_agree"] == 5 and report["greedy_identical"] == 5
    model = load_model(str(f16_copy))
    assert model.backend == "llama.cpp" and model.quantization == "f16"
    # evaluation never serves the Q4_1 file itself: it takes the checked copy, made once
    evaluated = load_full_precision("", copies_dir=str(f16_copy.parent))
    assert evaluated.quantization == "f16" and evaluated.name == f16_copy.stem
    assert load_model("").quantization == "q4_1"


def test_batch_jobs_are_served_at_full_precision_and_chat_as_packaged(f16_copy, settings, tmp_path):
    """The gpu runtime's samples are kept and counted (puzzles, solutions) and decoded in batches,
    where llama.cpp's f16 kernels are also the faster ones on a CPU: it serves the checked copy. A
    chat reply is one sequence, where the packaged Q4_1 is faster: the chat runtime serves that."""
    from webapp.serving.model_runtime import ModelRuntime, chat_runtime, runtime

    copies = tmp_path / "models" / "full-precision"  # where the site keeps its copies: this one, made above
    copies.mkdir(parents=True)
    for made in (f16_copy, f16_copy.with_name(f16_copy.name + ".json")):
        (copies / made.name).symlink_to(made)
    settings.DATA_DIR = tmp_path
    settings.AUTODIDACT_BATCH_WEIGHTS = "f16"  # "auto" picks bf16 on a llama.cpp built with bf16 kernels
    assert runtime.full_precision and not chat_runtime.full_precision
    target = {"id": None, "spec": "", "name": ""}
    batch, chat = ModelRuntime(full_precision=True)._load(target).model, ModelRuntime()._load(target).model
    try:
        assert (batch.backend, batch.quantization, chat.quantization) == ("llama.cpp", "f16", "q4_1")
        assert batch.name == f16_copy.stem
    finally:
        batch.close()
        chat.close()


def test_a_bf16_copy_writes_puzzles_where_asked_and_evaluation_stays_f16(f16_copy, settings, tmp_path):
    """On a CPU with bf16 dot products the bf16 copy decodes batches 1.19-1.26x faster than f16
    (docs/experiments.md): it is checked like the f16 one (logits within the limit, greedy tokens
    identical) and serves puzzle writing when chosen; evaluation keeps the f16 copy."""
    from webapp.serving.model_store import load_batch_version, load_full_precision_version

    copies = tmp_path / "models" / "full-precision"
    copies.mkdir(parents=True)
    for made in (f16_copy, f16_copy.with_name(f16_copy.name + ".json")):
        (copies / made.name).symlink_to(made)
    bf16 = full_precision_copy("", copies, "bf16")
    report = json.loads(bf16.with_name(bf16.name + ".json").read_text())
    assert report["passed"] and report["type"] == "bf16" and report["greedy_identical"] == 5
    assert 0 < report["max_abs_logit_diff"] < 0.5  # measured 0.27: bf16 keeps 8 bits of mantissa, f16 11
    settings.DATA_DIR, settings.AUTODIDACT_BATCH_WEIGHTS = tmp_path, "bf16"
    writer, judge = load_batch_version(""), load_full_precision_version("")
    try:
        assert (writer.backend, writer.quantization, judge.quantization) == ("llama.cpp", "bf16", "f16")
    finally:
        writer.close()
        judge.close()
    settings.AUTODIDACT_BATCH_WEIGHTS = "q8_0"
    with pytest.raises(ValueError, match="unknown batch weights 'q8_0'"):
        load_batch_version("")


def test_every_data_dir_serves_the_copy_made_at_install(f16_copy, tmp_path, monkeypatch):
    """`make install` makes the default model's f16 copy once beside the packaged models: a site's
    data dir (or a run's copies folder) serves that one instead of converting its own (~40 s each),
    and never takes a copy whose report names another source file."""
    installed = tmp_path / "models" / "full-precision"
    own = tmp_path / "data" / "models" / "full-precision"
    for folder in (installed, own):
        folder.mkdir(parents=True)
        for made in (f16_copy, f16_copy.with_name(f16_copy.name + ".json")):
            (folder / made.name).symlink_to(made)
    for made in own.iterdir():
        made.unlink()
    monkeypatch.setenv("AUTODIDACT_MODELS_DIR", str(tmp_path / "models"))
    served = load_full_precision("", copies_dir=str(own))
    try:
        assert served.quantization == "f16" and served.name == f16_copy.stem
    finally:
        served.close()
    assert list(own.iterdir()) == []  # nothing converted or written in the data dir
    # a report made from another file: the data dir's own checked copy is taken instead
    for made in (f16_copy, f16_copy.with_name(f16_copy.name + ".json")):
        (own / made.name).symlink_to(made)
    report = installed / (f16_copy.name + ".json")
    record = json.loads(report.read_text())
    report.unlink()
    report.write_text(json.dumps({**record, "like": "/elsewhere/SmolLM2-135M-Instruct.Q4_1.gguf"}))
    assert full_precision_copy("", own, reuse=(installed,)) == own / f16_copy.name


def test_the_check_catches_a_copy_that_does_not_match(f16_copy, dequantised):
    model, tokenizer = dequantised
    damaged = type(model)(model.config)
    damaged.load_state_dict(model.state_dict())
    with torch.no_grad():
        damaged.model.layers[3].self_attn.q_proj.weight.mul_(-1.0)
    check = agreement(damaged, tokenizer, f16_copy)
    assert not check.passed and check.max_abs_logit_diff > MAX_LOGIT_DIFF


def test_a_trained_checkpoint_gets_a_served_copy(tmp_path, dequantised):
    model, tokenizer = dequantised
    checkpoint = tmp_path / "model"
    model.save_pretrained(checkpoint)
    tokenizer.save_pretrained(checkpoint)
    assert served_copy(checkpoint) is None and choose_backend(str(checkpoint)) == "transformers"
    record = export_checked(checkpoint, resolve_model_source("").llama_file)
    assert record["passed"] and record["file"] == "model-f16.gguf" and (checkpoint / REPORT).is_file()
    assert served_copy(checkpoint) == checkpoint / "model-f16.gguf"
    served = load_model(str(checkpoint))  # auto, on a CPU: the fast backend serves the version
    assert served.backend == "llama.cpp" and served.quantization == "f16"
    # the copy named as a file (as `python -m engine.evaluate run humaneval --model .../model-f16.gguf`
    # does) keeps its chat template: transformers drops it when the GGUF lies in a checkpoint folder
    messages = [{"role": "user", "content": "Write a function that adds two numbers."}]
    direct = load_model(str(checkpoint / "model-f16.gguf"))
    assert direct.tokenizer.chat_template is not None
    assert direct.encode(messages) == served.encode(messages) == encode_prompt(tokenizer, messages)
    direct.close()
    # a copy whose check failed is never served
    (checkpoint / REPORT).write_text(json.dumps({**record, "passed": False}))
    assert served_copy(checkpoint) is None and load_model(str(checkpoint)).backend == "transformers"


def test_a_trained_version_writes_puzzles_from_its_bf16_copy_where_the_cpu_has_bf16(tmp_path, dequantised,
                                                                                   monkeypatch):
    """Sealing a version on a CPU whose llama.cpp has bf16 dot products (the probe is set here: this
    build may lack them) writes a checked bf16 copy beside the f16 one: puzzle writing loads it, as
    it loads the base's bf16 copy, evaluation keeps f16, and a version without one writes from f16."""
    from engine.training.sft import write_served_copy

    model, tokenizer = dequantised
    checkpoint = tmp_path / "model"
    model.save_pretrained(checkpoint)
    tokenizer.save_pretrained(checkpoint)
    monkeypatch.setattr(llama_cpp_backend, "has_bf16_kernels", lambda: True)
    record = write_served_copy(checkpoint, "")
    batch = record["batch_copy"]
    assert record["passed"] and record["file"] == "model-f16.gguf"
    assert batch["passed"] and batch["file"] == "model-bf16.gguf" and batch["greedy_identical"] == 5
    assert served_copy(checkpoint, "bf16") == checkpoint / "model-bf16.gguf" and (checkpoint / REPORT).is_file()
    loaded = {weights: load_full_precision(str(checkpoint), "llama.cpp", weights=weights)
              for weights in ("bf16", "f16")}
    try:
        assert {w: m.quantization for w, m in loaded.items()} == {"bf16": "bf16", "f16": "f16"}
        assert loaded["bf16"].name == loaded["f16"].name == "model"  # the version, whichever file serves it
    finally:
        for served in loaded.values():
            served.close()
    (checkpoint / "gguf-bf16.json").write_text(json.dumps({**batch, "passed": False}))
    fallback = load_full_precision(str(checkpoint), "llama.cpp", weights="bf16")
    assert fallback.quantization == "f16"
    fallback.close()


def test_export_refuses_a_checkpoint_of_another_model(tmp_path):
    tiny = tmp_path / "tiny"
    build_tiny_model(tiny)
    with pytest.raises(ExportError, match="layers"):
        export_checked(tiny, resolve_model_source("").llama_file)
