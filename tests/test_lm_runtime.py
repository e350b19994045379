"""The model runtime: streaming, batched sampling with a shared prefill, stops, cancellation, seeds.

Most tests use a tiny randomly initialised model (built from a config, the real tokenizer);
one module loads the packaged SmolLM2-135M-Instruct and checks it really answers with code."""
import threading
import time

import pytest

from engine.lm.code_extraction import cut_at_dedent, extract_code, fenced_blocks
from engine.lm.generation import CancelToken, SamplingParams
from engine.lm.tiny import build_tiny_model
from engine.lm.transformers_backend import TransformersModel


def drain(generator):
    parts = []
    try:
        while True:
            parts.append(next(generator))
    except StopIteration as done:
        return parts, done.value


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return TransformersModel.load(str(build_tiny_model(tmp_path_factory.mktemp("tiny-model"))))


@pytest.fixture(scope="module")
def smol():
    return TransformersModel.load("")


def test_tiny_model_loads_as_a_local_checkpoint(tiny):
    assert tiny.device == "cpu" and tiny.source.kind == "local-dir"
    assert tiny.end_ids and tiny.load_seconds < 30


def test_stream_deltas_add_up_to_the_completion(tiny):
    parts, completion = drain(tiny.stream([{"role": "user", "content": "hi"}], SamplingParams(max_new_tokens=12)))
    assert "".join(parts) == completion.text
    assert completion.tokens == 12 and completion.finish_reason == "length"


def test_seeded_sampling_is_reproducible_and_samples_differ(tiny):
    params = SamplingParams(max_new_tokens=8, temperature=1.0, seed=11)
    first = [c.text for c in tiny.sample("def f(x):", 6, params)]
    again = [c.text for c in tiny.sample("def f(x):", 6, params)]
    assert first == again
    assert len(set(first)) > 1  # six samples at T=1 from a random model are not all the same


def test_greedy_samples_of_one_prompt_are_identical(tiny):
    texts = {c.text for c in tiny.sample("def f(x):", 5, SamplingParams(max_new_tokens=8))}
    assert len(texts) == 1


def test_stop_strings_end_generation_and_are_not_streamed(tiny):
    params = SamplingParams(max_new_tokens=40, temperature=1.0, seed=5)
    full = tiny.complete("a b c", params).text
    assert len(full) > 4
    stop = full[2:4]
    parts, completion = drain(tiny.stream("a b c", SamplingParams(max_new_tokens=40, temperature=1.0, seed=5,
                                                                  stop=(stop,))))
    assert completion.finish_reason == "stop"
    assert completion.text == full[:full.find(stop)]
    assert stop not in "".join(parts) and "".join(parts) == completion.text


def test_cancel_stops_within_a_decode_step(tiny):
    cancel = CancelToken()
    generator = tiny.stream("def f(x):", SamplingParams(max_new_tokens=4000), cancel)
    next(generator)
    started = time.monotonic()
    threading.Timer(0.05, cancel.cancel).start()
    _, completion = drain(generator)
    assert completion.finish_reason == "cancelled"
    assert time.monotonic() - started < 1.0
    assert 0 < completion.tokens < 4000


def test_batches_of_several_prompts_keep_their_own_samples(tiny):
    params = SamplingParams(max_new_tokens=6, temperature=0.9, seed=2)
    results = tiny.sample_many(["x", "a much longer prompt than the first one"], 3, params)
    assert [len(r) for r in results] == [3, 3]
    assert all(c.tokens <= 6 for r in results for c in r)


def test_int8_quantized_model_generates_and_bad_options_are_refused(tmp_path_factory):
    folder = str(build_tiny_model(tmp_path_factory.mktemp("tiny-int8")))
    quantized = TransformersModel.load(folder, quantize="int8")
    assert quantized.quantization == "int8" and quantized.precision == "int8"
    assert TransformersModel.load(folder).precision == "float32"  # on CPU; bf16 on CUDA (benchmarks/gpu_check.sh)
    assert quantized.complete("def f(x):", SamplingParams(max_new_tokens=5)).tokens == 5
    with pytest.raises(ValueError, match="unknown quantization"):
        TransformersModel.load(folder, quantize="int3")


def test_top_k_limits_the_choice_to_the_most_likely_tokens(tiny):
    greedy = tiny.complete("def f(x):", SamplingParams(max_new_tokens=8)).text
    one = {c.text for c in tiny.sample("def f(x):", 6, SamplingParams(max_new_tokens=8, temperature=1.5, top_k=1, seed=3))}
    assert one == {greedy}  # top-k 1 at any temperature is greedy
    wide = [c.text for c in tiny.sample("def f(x):", 6, SamplingParams(max_new_tokens=8, temperature=1.0, seed=11))]
    same = [c.text for c in tiny.sample("def f(x):", 6, SamplingParams(max_new_tokens=8, temperature=1.0, seed=11,
                                                                       top_k=10_000_000))]
    assert wide == same  # a k past the vocabulary changes nothing


def test_bad_sampling_params_are_refused():
    for bad in ({"max_new_tokens": 0}, {"temperature": -1}, {"top_p": 0}, {"top_k": -1}):
        with pytest.raises(ValueError):
            SamplingParams(**bad)


def test_code_extraction():
    reply = ("Here you go:\n```python\ndef rev(s):\n    return s[::-1]\n```\nAnd a test:\n"
             "```\nassert rev('ab') == 'ba'\n```\n```bash\nls\n```")
    assert fenced_blocks(reply) == ["def rev(s):\n    return s[::-1]\n", "assert rev('ab') == 'ba'\n"]
    assert extract_code(reply) == "def rev(s):\n    return s[::-1]\n"
    assert extract_code(reply, entry_point="rev").startswith("def rev")
    assert extract_code("def f():\n    return 1") == "def f():\n    return 1\n"
    assert extract_code("Sorry, I cannot help with that.") is None
    assert extract_code("```python\ndef broken(:\n```") == "def broken(:\n"  # last resort: the block itself
    cut = "Sure:\n```python\ndef add(a, b):\n    return a + b\n\n\ndef unfinished(x):\n    return x +"
    assert fenced_blocks(cut) == ["def add(a, b):\n    return a + b\n\n\ndef unfinished(x):\n    return x +\n"]
    assert extract_code(cut, "add").startswith("def add(a, b):")  # a reply cut by its token limit keeps its code
    assert cut_at_dedent("\n    return x + 1\n\nprint('trailing')\ndef g(): pass") == "\n    return x + 1\n"


def test_packaged_model_answers_a_coding_question_with_code(smol):
    assert smol.name == "SmolLM2-135M-Instruct"
    started = time.monotonic()
    parts, completion = drain(smol.stream(
        [{"role": "user", "content": "Write a Python function that reverses a string."}],
        SamplingParams(max_new_tokens=64)))
    assert time.monotonic() - started < 60
    code = extract_code(completion.text)
    assert code is not None and "def " in code and "[::-1]" in code
    assert "".join(parts) == completion.text


def test_left_padding_does_not_change_greedy_answers(smol):
    prompts = ["def add(a, b):", "The capital of France is"]
    params = SamplingParams(max_new_tokens=12)
    alone = [smol.complete(p, params).text for p in prompts]
    together = [r[0].text for r in smol.sample_many(prompts, 1, params)]
    assert alone == together
    assert "Paris" in alone[1]


def test_coalesced_chunks_of_a_real_stream_rebuild_the_completion(tiny):
    from engine.lm.stream_chunks import coalesce

    params = SamplingParams(max_new_tokens=30, temperature=1.0, seed=4)
    expected = tiny.complete("def f(x):", params)
    chunks = list(coalesce(tiny.stream("def f(x):", params), interval_s=0.1))
    assert "".join(c.text for c in chunks) == expected.text
    assert chunks[-1].done and chunks[-1].tokens == expected.tokens and chunks[-1].finish_reason == "length"
    assert [c.seq for c in chunks] == list(range(len(chunks)))


def test_a_shared_few_shot_prefix_is_computed_once_without_changing_answers(smol):
    """Prompts that start alike (a few-shot prefix) share one prefill of it; each prompt's greedy
    answer is the same as when it is generated alone."""
    from engine.lm.prompt_tokens import MIN_SHARED_PREFIX, shared_prefix_length

    prefix = "".join(f"def f{i}(x: int):\n    return x + {i} == {2 * i}\n\n" for i in range(1, 6))
    prompts = [prefix + f"def f{i}(s: str):\n    return len(s) == {i}\n\ndef g{i}():" for i in (6, 7, 8)]
    encoded = [smol.encode(p) for p in prompts]
    assert shared_prefix_length(encoded) >= MIN_SHARED_PREFIX
    params = SamplingParams(max_new_tokens=24)
    together = [group[0].text for group in smol.sample_many(prompts, 1, params)]
    assert together == [smol.complete(p, params).text for p in prompts]
    assert shared_prefix_length([[1, 2, 3], [1, 2]]) == 1  # every prompt keeps a token of its own


def protocol_members() -> set[str]:
    """Everything the LanguageModel protocol promises its callers (attributes and methods)."""
    from engine.lm.generation import LanguageModel

    methods = {name for name, value in vars(LanguageModel).items() if callable(value) and not name.startswith("_")}
    return set(LanguageModel.__annotations__) | methods


def test_the_transformers_backend_offers_the_whole_protocol(tiny):
    assert {"encode", "tokenizer", "backend", "quantization", "stream", "sample_many"} <= protocol_members()
    assert [name for name in sorted(protocol_members()) if not hasattr(tiny, name)] == []
