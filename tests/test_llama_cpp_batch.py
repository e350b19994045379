"""Batched llama.cpp decoding (engine/lm/llama_cpp_batch.py) with the packaged default model: it must
give what one-at-a-time decoding gives, honour stops, seeds and cancellation. Needs llama-cpp-python."""
import llama_cpp
import numpy as np
import pytest

from engine.lm.generation import CancelToken, SamplingParams
from engine.lm.loading import load_model
from tests.support import require_llama_cpp

PROMPTS = [
    [{"role": "user", "content": "Write a Python function that returns the square of a number."}],
    [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}],
    "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
]


@pytest.fixture(scope="module")
def smol():
    require_llama_cpp()
    model = load_model("")
    assert model.backend == "llama.cpp"
    return model


class CancelAfter(CancelToken):
    """Reads as cancelled from its (checks + 1)-th look on."""

    def __init__(self, checks: int):
        super().__init__()
        self.left = checks

    @property
    def cancelled(self) -> bool:
        self.left -= 1
        return self.left < 0


def test_greedy_batched_equals_one_at_a_time(smol):
    params = SamplingParams(max_new_tokens=48)
    alone = [smol.complete(prompt, params) for prompt in PROMPTS]
    assert {c.finish_reason for c in alone} <= {"eos", "length"} and all(c.tokens > 5 for c in alone)
    # A batch of one sequence runs llama.cpp's single-sequence kernels: token for token the same.
    assert [smol.sample(prompt, 1, params)[0] for prompt in PROMPTS] == alone

    # Several sequences in one llama_decode run other kernels (the attention's matrix products over
    # several query rows), which round differently: logits move by up to ~1 (max |difference| over
    # the vocabulary), no further from the fp32 model than the single-sequence path's (both quantise
    # activations to 8 bits for the Q4 weights). So a batched greedy sequence follows the one decoded
    # alone token for token up to a near tie between its two best tokens, where it may take the other.
    decoder = smol._batch_decoder
    encoded = [smol.encode(prompt) for prompt in PROMPTS]
    single = [decoder.sequences([ids], 1, params)[0].ids for ids in encoded]
    # Two samples of each prompt: the prompt's KV cache is copied to the second; the two chat
    # prompts share the chat template's opening, prefilled once for both.
    together = decoder.sequences(encoded, 2, params)
    # One sample of each distinct prompt: each sequence gets a cache stream of its own.
    streamed = decoder.sequences(encoded, 1, params)
    assert decoder._size[2] is False and len(streamed) == len(encoded)
    identical = 0
    for index, sequence in enumerate(together + streamed):
        n = 2 if index < len(together) else 1
        index = index if n == 2 else index - len(together)
        prompt, expected = encoded[index // n], single[index // n]
        split = next((k for k, (a, b) in enumerate(zip(sequence.ids, expected)) if a != b), None)
        if split is None:
            assert sequence.ids == expected
            identical += 1
            continue
        margin = next_token_margin(decoder, prompt + expected[:split], expected[split], sequence.ids[split])
        assert split >= 3 and 0 <= margin < 1.0, (split, margin)
    assert identical >= 3


def next_token_margin(decoder, ids: list[int], best: int, other: int) -> float:
    """How far `best` is ahead of `other` in the logits after `ids`, computed alone (one prefill)."""
    from engine.lm.llama_cpp_batch import DecodedSequence

    decoder._ensure_context(1, len(ids) + 1)
    llama_cpp.llama_memory_clear(decoder._context.memory, True)
    row = decoder._prefill([[DecodedSequence(0, ids, 0, 1, np.random.default_rng(0))]], 0, 1)[0]
    return float(row[best] - row[other])


def test_stop_strings_cut_before_the_stop(smol):
    full = smol.sample(PROMPTS[0], 1, SamplingParams(max_new_tokens=80))[0].text
    assert "def " in full
    stopped = smol.sample(PROMPTS[0], 1, SamplingParams(max_new_tokens=80, stop=("def ", "never written")))[0]
    assert stopped.text == full[:full.index("def ")] and stopped.finish_reason == "stop"


def test_seeds_reproduce_and_samples_differ(smol):
    params = SamplingParams(max_new_tokens=30, temperature=0.8, top_k=50, seed=3)
    open_ended = [PROMPTS[0], PROMPTS[2]]  # (asked for the capital of France, two samples may well agree)
    first = smol.sample_many(open_ended, 4, params)
    second = smol.sample_many(open_ended, 4, params)
    assert [[c.text for c in group] for group in first] == [[c.text for c in group] for group in second]
    for group in first:
        assert len({c.text for c in group}) == 4  # n samples of one prompt differ from each other
    other = smol.sample_many(open_ended, 4, SamplingParams(max_new_tokens=30, temperature=0.8, top_k=50, seed=4))
    assert [c.text for c in other[0]] != [c.text for c in first[0]]


def test_cancel_between_steps(smol):
    params = SamplingParams(max_new_tokens=100, temperature=0.8, seed=1)
    early = smol.sample_many(PROMPTS, 2, params, CancelAfter(4))  # one look before the prefill, then one a step
    assert all(c.finish_reason == "cancelled" and 1 <= c.tokens <= 4 for group in early for c in group)
    cancelled = CancelToken()
    cancelled.cancel()
    assert [c.finish_reason for c in smol.sample(PROMPTS[0], 3, params, cancelled)] == ["cancelled"] * 3


def test_more_sequences_than_a_batch_run_in_waves(smol):
    from engine.lm.llama_cpp_batch import BatchDecoder

    decoder = BatchDecoder(smol.llm, max_sequences=4)
    try:
        groups = decoder.generate([smol.encode(p) for p in PROMPTS], 3, SamplingParams(max_new_tokens=6, seed=2,
                                                                                        temperature=0.8))
    finally:
        decoder.close()
    assert [len(group) for group in groups] == [3, 3, 3]  # 9 sequences: waves of 4, 4 and 1
    assert all(c.tokens >= 1 and c.finish_reason in ("eos", "length") for group in groups for c in group)


def test_prompts_are_admitted_in_groups_within_the_kv_cell_and_sequence_caps():
    from engine.lm.llama_cpp_batch import admits, prompt_groups

    long_a, long_b = [1] * 1000, [2] * 1000
    # The n samples of a prompt are one group (its prompt prefilled once), cut at the sequence cap.
    assert prompt_groups([long_a] * 3 + [long_b] + [long_a], 128) == [(0, 3), (3, 4), (4, 5)]
    assert prompt_groups([long_a] * 9, 4) == [(0, 4), (4, 8), (8, 9)]
    assert prompt_groups([], 4) == []
    # Distinct 1,000-token prompts with a 256-token budget need 1,256 cells each: 3 fit in 4,096.
    assert admits(2 * 1256, 2, 1256, 1, 4096, 128) and not admits(3 * 1256, 3, 1256, 1, 4096, 128)
    # Samples of one prompt share its cells (prompt once, a budget each): 8 x 256 + 1,000 fit in 4,096.
    assert admits(0, 0, 1000 + 8 * 256, 8, 4096, 128)
    assert not admits(6, 2, 1, 3, 10**9, 4)  # the sequence cap holds too
    assert admits(0, 0, 5256, 1, 4096, 128)  # a group over the cap runs when nothing else does


class Counted:
    """Counts a decoder's llama_decode calls (prefills and steps)."""

    def __init__(self, decoder):
        self.calls, self.decode = 0, decoder._decode
        decoder._decode = self

    def __call__(self, *args):
        self.calls += 1
        return self.decode(*args)


def test_a_finished_sequence_makes_room_for_a_waiting_prompt(smol):
    """Refill: with room for two sequences, the third prompt starts as soon as the first finishes,
    instead of after the slower of the two (a wave waiting for its last); same completions, fewer
    steps. Greedy, so where the batch's rounding differs a sequence may part at a near tie only."""
    from engine.lm.llama_cpp_batch import BatchDecoder

    prompts = [smol.encode(PROMPTS[1]), smol.encode(PROMPTS[0]), smol.encode(PROMPTS[2])]
    params = SamplingParams(max_new_tokens=30)
    results = {}
    for refill in (False, True):
        decoder = BatchDecoder(smol.llm, max_sequences=2, refill=refill, streams=False)
        counter = Counted(decoder)
        try:
            results[refill] = (decoder.sequences(prompts, 1, params), counter.calls)
        finally:
            decoder.close()
    (waves, wave_calls), (refilled, refill_calls) = results[False], results[True]
    alone_decoder = BatchDecoder(smol.llm)
    lengths = [len(s.ids) for s in waves]
    assert lengths[0] < 15 and lengths[1] == lengths[2] == 30, lengths  # a short answer, then two long ones
    # Waves: 2 prefills and 30 + 30 steps less the last of each; refill: the third prompt joins after
    # the short answer, so the two long ones overlap.
    assert wave_calls == 2 + 29 + 29 and refill_calls < wave_calls - 15, (wave_calls, refill_calls)
    for prompt, alone, together in zip(prompts, waves, refilled):
        split = next((k for k, (a, b) in enumerate(zip(together.ids, alone.ids)) if a != b), None)
        if split is None:
            assert together.ids == alone.ids and together.finish == alone.finish
        else:
            margin = next_token_margin(alone_decoder, prompt + alone.ids[:split], alone.ids[split], together.ids[split])
            assert 0 <= margin < 1.0, (split, margin)
    alone_decoder.close()


def test_distinct_prompts_that_share_their_examples_share_one_cache(smol):
    """One sample each of prompts that differ only at the end (the solve stage's puzzles after the
    same worked examples): the examples are prefilled once in a unified cache, not once a stream."""
    from engine.lm.llama_cpp_batch import BatchDecoder

    decoder = BatchDecoder(smol.llm)  # its own, so the test holds alone and in any order
    examples = smol.encode("def sat(x: int) -> bool:\n    return x * x == 49\n\ndef sol():\n    return 7\n\n" * 12)
    prompts = [examples + smol.encode(f"def sat(s: str) -> bool:\n    return s.count('{c}') == 3\n") for c in "abc"]
    try:
        out = decoder.sequences(prompts, 1, SamplingParams(max_new_tokens=4, temperature=0.8, seed=0))
        assert decoder._size[2] is True and len(out) == 3 and all(s.ids for s in out)
    finally:
        decoder.close()


def test_a_character_split_across_tokens_is_decoded_whole(smol):
    from engine.lm.llama_cpp_batch import DecodedSequence

    decoder = smol._batch_decoder
    by_piece = {decoder._piece(token): token for token in range(decoder.n_vocab)}
    e_acute = [by_piece[b"\xc3"], by_piece[b"\xa9"]]  # "é" as two byte tokens
    sequence = DecodedSequence(0, [1], 0, 3, np.random.default_rng(0))
    decoder._accept(sequence, e_acute[0], (), 0)
    assert sequence.text == ""  # half a character waits for the rest
    decoder._accept(sequence, e_acute[1], (), 0)
    decoder._accept(sequence, e_acute[0], (), 0)  # the budget ends with half a character
    assert sequence.text == "é\ufffd" and sequence.finish == "length"


def test_choose_tokens_applies_top_k_and_top_p():
    from engine.lm.llama_cpp_batch import choose_tokens

    logits = np.log(np.array([[0.5, 0.3, 0.15, 0.05]] * 200, dtype=np.float32))
    rngs = [np.random.default_rng(i) for i in range(200)]
    assert set(choose_tokens(logits, SamplingParams(temperature=0), rngs).tolist()) == {0}
    assert set(choose_tokens(logits, SamplingParams(temperature=1.0, top_k=2), rngs).tolist()) == {0, 1}
    assert set(choose_tokens(logits, SamplingParams(temperature=1.0, top_p=0.7), rngs).tolist()) == {0, 1}
    assert set(choose_tokens(logits, SamplingParams(temperature=1.0, top_p=0.4), rngs).tolist()) == {0}
    assert set(choose_tokens(logits, SamplingParams(temperature=1.0), rngs).tolist()) == {0, 1, 2, 3}
