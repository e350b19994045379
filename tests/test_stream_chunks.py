"""Coalescing a token stream into numbered chunks for the channel layer."""
from engine.lm.generation import Completion
from engine.lm.stream_chunks import coalesce


def fake_stream(deltas, completion):
    yield from deltas
    return completion


class FakeClock:
    """Each delta arrives 30 ms after the previous one."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        self.now += 0.03
        return self.now


def test_first_delta_goes_out_at_once_then_at_most_every_interval():
    deltas = [f"t{i} " for i in range(20)]
    chunks = list(coalesce(fake_stream(deltas, Completion("".join(deltas), 20, "eos")), 0.1, FakeClock()))
    assert chunks[0].text == "t0 " and chunks[0].seq == 0
    assert [c.seq for c in chunks] == list(range(len(chunks)))
    assert "".join(c.text for c in chunks) == "".join(deltas)
    assert 5 <= len(chunks) <= 8  # 20 deltas over 0.6 s, flushed every 0.1 s: far fewer messages
    assert chunks[-1].done and chunks[-1].finish_reason == "eos" and chunks[-1].tokens == 20
    assert not any(c.done for c in chunks[:-1])


def test_empty_stream_still_ends_with_a_final_chunk():
    chunks = list(coalesce(fake_stream([], Completion("", 0, "cancelled")), 0.1, FakeClock()))
    assert len(chunks) == 1 and chunks[0].done and chunks[0].text == "" and chunks[0].finish_reason == "cancelled"
