"""The packaged default model served by llama.cpp behind the LanguageModel interface, and the
choice of backend. `make install` builds llama-cpp-python; these tests need it."""
import pytest

from engine.lm import llama_cpp_backend
from engine.lm.generation import CancelToken, SamplingParams
from engine.lm.loading import choose_backend, load_model
from engine.lm.tiny import build_tiny_model
from tests.support import require_llama_cpp

QUESTION = [{"role": "user", "content": "Write a Python function that returns the square of a number."}]


@pytest.fixture(scope="module")
def smol():
    require_llama_cpp()
    model = load_model("")
    assert model.backend == "llama.cpp"  # auto: a GGUF model on a CPU
    return model


def test_packaged_model_streams_code_through_llama_cpp(smol):
    stream = smol.stream(QUESTION, SamplingParams(max_new_tokens=80))
    deltas = []
    while True:
        try:
            deltas.append(next(stream))
        except StopIteration as done:
            completion = done.value
            break
    assert len(deltas) > 5 and "".join(deltas) == completion.text
    assert "def " in completion.text and completion.tokens == len([d for d in deltas if d])
    # Greedy is deterministic, and the same prompt tokens as the transformers backend are used.
    assert smol.complete(QUESTION, SamplingParams(max_new_tokens=80)).text == completion.text


def test_stop_strings_cancel_and_seeds(smol):
    stopped = smol.complete(QUESTION, SamplingParams(max_new_tokens=120, stop=("def ",)))
    assert "def " not in stopped.text and stopped.finish_reason == "stop"

    cancel = CancelToken()
    stream = smol.stream(QUESTION, SamplingParams(max_new_tokens=200), cancel)
    next(stream)
    cancel.cancel()
    rest = list(iter(lambda: next(stream, None), None))
    assert len(rest) <= 1  # noticed before the next token

    params = SamplingParams(max_new_tokens=30, temperature=0.9, seed=7)
    first, second = smol.sample(QUESTION, 2, params), smol.sample(QUESTION, 2, params)
    assert [c.text for c in first] == [c.text for c in second]  # same seed, same samples
    assert first[0].text != first[1].text  # n samples differ from each other


def test_backend_choice(tmp_path):
    tiny = str(build_tiny_model(tmp_path / "tiny"))
    assert choose_backend(tiny) == "transformers"  # a checkpoint directory, e.g. from a training round
    assert choose_backend("", quantize="int8") == "transformers"
    assert choose_backend("", backend="transformers") == "transformers"
    with pytest.raises(ValueError, match="unknown backend"):
        choose_backend("", backend="vllm")
    if llama_cpp_backend.available():
        assert choose_backend("") == "llama.cpp"
        with pytest.raises(ValueError, match="GGUF files only"):
            load_model(tiny, backend="llama.cpp")


def test_the_llama_cpp_backend_offers_the_whole_protocol(smol):
    from tests.test_lm_runtime import protocol_members

    assert [name for name in sorted(protocol_members()) if not hasattr(smol, name)] == []
    assert smol.encode(QUESTION) and smol.quantization == "q4_1"


def test_llama_cpp_applies_top_k(smol):
    greedy = smol.complete(QUESTION, SamplingParams(max_new_tokens=12)).text
    sampled = {c.text for c in smol.sample(QUESTION, 3, SamplingParams(max_new_tokens=12, temperature=1.5, top_k=1,
                                                                         seed=5))}
    assert sampled == {greedy}
