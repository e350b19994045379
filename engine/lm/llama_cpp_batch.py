"""Batched decoding for llama.cpp: all sequences of a request advance together, one llama_decode a step.

Why: llama-cpp-python's high-level API decodes one sequence at a time, so n samples cost n times
one, while on a CPU a step over many sequences costs little more than a step over one (the weights
are read once per step). As llama.cpp's server does, every sequence gets its own seq_id in one
context. A prefix all prompts share (the few-shot examples of a solving prompt) and then each
distinct prompt are prefilled once, and their KV cache is copied to the sequences that continue
them. Tokens are sampled here with numpy from each sequence's logits row, so SamplingParams mean
what they mean on the transformers backend (top-k keeping ties, temperature, top-p), and every
sequence has its own generator seeded from (params.seed, its index in the request): the same call
gives the same samples.

A request's prompts are admitted as the cache has room (a cap on KV cells, `admits`) and, as
llama.cpp's server does with its slots, a waiting prompt starts as soon as a finished sequence
frees its cells ("refill"), where a wave waited for its slowest sequence before the next prompts
started (benchmarks/batch_waves.py --case code-check, the gate's 90 MBPP validation tasks, greedy,
512 tokens: 53.0 tok/s with refill and 32 tasks a request against 39.7 in waves of the suite's
8 before, 46.9 in waves of 32; the same 5 passed). The cap still reserves a whole budget for each
sequence, so most such requests decode about 5 sequences a step.

The KV cache is llama.cpp's unified one where prompts are shared: a copied prompt is shared, not
duplicated, and the context holds just the cells a request needs (one stream per sequence measured
slower there: P3 evaluation prompts, 8 x 10 samples, 1 thread: 88-92 tok/s against 121-129). A
request of distinct prompts, one sample each (benchmarks, dialog turns), gets one cache stream per
sequence instead, so each attends over its own cells only (benchmarks/batch_waves.py, 12 distinct
1,000-token prompts: 32.3 tok/s against 22.0 in unified waves of 4,096 cells, 8.4 in one wave).

Numerics: a batch of one sequence runs the kernels `Llama.create_completion` runs, token for token
the same. With several sequences per step the attention's products cover several query rows and
round differently (logits move by up to ~1, no further from the fp32 model than the
single-sequence path's), so greedy decoding can take the other token at a near tie.
"""
from __future__ import annotations

import codecs
import ctypes
import logging
import os
import sys
from dataclasses import dataclass, field

import llama_cpp
import numpy as np
from llama_cpp import _internals

from engine.lm.generation import CancelToken, Completion, SamplingParams
from engine.lm.prompt_tokens import MIN_SHARED_PREFIX, shared_prefix_length

MAX_SEQUENCES = 128  # decoded together; a request with more waits for room
MAX_WAVE_CELLS = 4096  # KV cells the live sequences may reserve; more distinct long prompts wait (admits)
MAX_STREAMS = 32  # sequences decoded together when each has a cache stream of its own (distinct prompts)
CONTEXT_STEP = 1024  # context sizes (KV cells) are rounded up to this, so a context serves several requests


@dataclass
class DecodedSequence:
    index: int  # in the request, prompt-major: seeds its generator
    prompt: list[int]
    slot: int  # its seq_id in the context
    budget: int  # new tokens it may produce
    rng: np.random.Generator
    ids: list[int] = field(default_factory=list)  # generated, the end token left out
    end_token: int | None = None  # the end-of-generation token it sampled, if it ended on one
    text: str = ""
    finish: str | None = None
    utf8: codecs.IncrementalDecoder = field(default_factory=lambda: codecs.getincrementaldecoder("utf-8")("replace"))


class BatchDecoder:
    """Decodes many sequences at once with the weights of a loaded `llama_cpp.Llama`, in a second
    context of its own (created for the first request and regrown when a request needs more)."""

    def __init__(self, llm, max_sequences: int = MAX_SEQUENCES, max_wave_cells: int = MAX_WAVE_CELLS,
                 streams: bool = True, refill: bool = True):
        self.llm = llm
        self.max_wave_cells = max_wave_cells
        self.streams = streams  # distinct prompts, one sample each: a cache stream per sequence
        self.refill = refill  # admit waiting prompts as sequences finish (False: in waves, each waiting for its last)
        self.vocab = llama_cpp.llama_model_get_vocab(llm._model.model)
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(self.vocab)
        # (one seq_id more holds the prefix all prompts share)
        self.max_sequences = max(1, min(max_sequences, llama_cpp.llama_max_parallel_sequences() - 1))
        self._context: _internals.LlamaContext | None = None
        self._batch = self._holder = None
        self._size = (0, 0, True)  # sequences, KV cells, unified
        self._pieces: dict[int, bytes] = {}

    def generate(self, prompts: list[list[int]], n: int, params: SamplingParams,
                 cancel: CancelToken | None = None) -> list[list[Completion]]:
        """n completions of each prompt (token ids), in order."""
        flat = self.sequences(prompts, n, params, cancel)
        done = [Completion(s.text, len(s.ids), s.finish or "length") for s in flat]
        return [done[i * n:(i + 1) * n] for i in range(len(prompts))]

    def sequences(self, prompts: list[list[int]], n: int, params: SamplingParams,
                  cancel: CancelToken | None = None) -> list[DecodedSequence]:
        """What `generate` returns, flat (prompt-major) and with each sequence's token ids."""
        if n < 1 or not prompts:
            return []
        seed = params.seed if params.seed is not None else int.from_bytes(os.urandom(8), "little")
        flat = [prompt for prompt in prompts for _ in range(n)]
        distinct = list({tuple(p): p for p in prompts}.values())
        shared = shared_prefix_length(distinct) if len(distinct) > 1 else 0
        # Little to share (a chat template's first tokens, not a solving prompt's examples): each
        # sequence gets a cache stream of its own, so its attention runs over its own cells only,
        # while the step still reads the weights once for all.
        streams = (self.streams and n == 1 and len(distinct) == len(prompts) > 1
                   and shared * 2 < min(map(len, prompts)))
        return self._run(flat, params, seed, cancel, 0 if streams or shared < MIN_SHARED_PREFIX else shared,
                         unified=not streams)

    # -- a request: admit prompts as the cache has room, decode every live sequence a token per step
    def _run(self, flat: list[list[int]], params: SamplingParams, seed: int, cancel: CancelToken | None,
             shared: int, unified: bool) -> list[DecodedSequence]:
        limit = llama_cpp.llama_model_n_ctx_train(self.llm._model.model)
        if any(not 0 < len(p) < limit for p in flat):
            raise ValueError(f"every prompt needs 1 to {limit - 1} tokens (the model's context)")
        sequences = [DecodedSequence(i, prompt, -1, min(params.max_new_tokens, limit - len(prompt)),
                                     np.random.default_rng([seed, i])) for i, prompt in enumerate(flat)]
        groups = prompt_groups(flat, self.max_sequences if unified else 1)
        # a group reserves its prompt (less the shared prefix) and each member's budget
        costs = [len(flat[a]) - shared + sum(s.budget for s in sequences[a:b]) for a, b in groups]
        if unified:
            slots, max_cells = min(self.max_sequences, len(flat)), self.max_wave_cells
            self._ensure_context(slots + (1 if shared else 0),
                                 max(shared + max(costs), min(max_cells, shared + sum(costs))))
        else:  # a stream a slot, each as long as the request's longest prompt and budget: no cell cap
            slots, max_cells = min(self.max_sequences, MAX_STREAMS, len(flat)), sys.maxsize
            stream = -(-max(len(s.prompt) + s.budget for s in sequences) // 256) * 256
            self._ensure_context(slots, stream * slots, unified=False)
        if cancel is not None and cancel.cancelled:
            for sequence in sequences:
                sequence.finish = "cancelled"
            return sequences
        memory = self._context.memory
        llama_cpp.llama_memory_clear(memory, True)
        holder = slots  # the seq_id that keeps the shared prefix for every prompt admitted later
        if shared:
            self._prefill_tokens([(DecodedSequence(-1, flat[0], holder, 0, None), flat[0][:shared], 0)],
                                 want_logits=False)
        pending, free = list(range(len(groups)))[::-1], list(range(slots))[::-1]
        reserved, live, logits = shared, [], np.empty((0, self.n_vocab), dtype=np.float32)
        left = {g: b - a for g, (a, b) in enumerate(groups)}  # members of a group still decoding
        group_of = {i: g for g, (a, b) in enumerate(groups) for i in range(a, b)}
        stops = params.stop
        longest_stop = max((len(s) for s in stops), default=0)
        while True:
            if pending and (self.refill or not live):
                admitted = []
                while pending and admits(reserved, len(live) + sum(b - a for a, b in admitted), costs[pending[-1]],
                                         groups[pending[-1]][1] - groups[pending[-1]][0], max_cells, slots):
                    g = pending.pop()
                    admitted.append(groups[g])
                    reserved += costs[g]
                    for sequence in sequences[groups[g][0]:groups[g][1]]:
                        sequence.slot = free.pop()
                if admitted:
                    members = [sequences[a:b] for a, b in admitted]
                    logits = np.array(logits)  # a view of llama.cpp's buffer, which the prefill overwrites
                    rows = self._prefill(members, shared, holder) if unified else self._prefill_streams(members)
                    live += [s for group in members for s in group]
                    logits = np.concatenate([logits, rows])
            chosen = choose_tokens(logits, params, [s.rng for s in live])
            still = []
            for sequence, token in zip(live, chosen.tolist()):
                self._accept(sequence, token, stops, longest_stop)
                if sequence.finish is None:
                    still.append(sequence)
                    continue
                llama_cpp.llama_memory_seq_rm(memory, sequence.slot, -1, -1)
                free.append(sequence.slot)
                g = group_of[sequence.index]
                left[g] -= 1
                reserved -= sequence.budget + (0 if left[g] else len(sequence.prompt) - shared)
            live = still
            if not live and not pending:
                break
            if cancel is not None and cancel.cancelled:
                for sequence in sequences:
                    if sequence.finish is None:
                        sequence.finish = "cancelled"
                break
            if live:
                self._decode([s.ids[-1] for s in live], [len(s.prompt) + len(s.ids) - 1 for s in live],
                             [s.slot for s in live], True)
                logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits(self._context.ctx),
                                               shape=(len(live), self.n_vocab))
            else:
                logits = logits[:0]
        return sequences

    def _prefill(self, groups: list[list[DecodedSequence]], shared: int, holder: int) -> np.ndarray:
        """Computes each group's prompt once (after the shared prefix, copied from the holder) and
        copies it to the group's other sequences; returns each sequence's first logits row."""
        memory = self._context.memory
        heads = [members[0] for members in groups]
        if shared:
            for head in heads:
                llama_cpp.llama_memory_seq_cp(memory, holder, head.slot, -1, -1)
        rows = self._prefill_tokens([(head, head.prompt[shared:], shared) for head in heads], want_logits=True)
        logits = []
        for members, row in zip(groups, rows):
            for member in members:
                logits.append(row)
                if member is not members[0]:
                    llama_cpp.llama_memory_seq_cp(memory, members[0].slot, member.slot, -1, -1)
        return np.stack(logits)

    def _prefill_streams(self, groups: list[list[DecodedSequence]]) -> np.ndarray:
        """Each prompt into its own stream, one sequence a decode call (a call may not mix streams
        of unequal lengths); returns each sequence's first logits row."""
        return np.stack([self._prefill_tokens([(sequence, sequence.prompt, 0)], want_logits=True)[0]
                         for members in groups for sequence in members])

    def _prefill_tokens(self, parts: list[tuple[DecodedSequence, list[int], int]],
                        want_logits: bool) -> list[np.ndarray]:
        """Decodes each (sequence, tokens, first position) in batches of at most n_batch tokens; with
        `want_logits`, the logits after each part's last token."""
        items = [(token, start + i, sequence.slot, want_logits and i == len(tokens) - 1)
                 for sequence, tokens, start in parts for i, token in enumerate(tokens)]
        capacity = llama_cpp.llama_n_batch(self._context.ctx)
        rows = []
        for begin in range(0, len(items), capacity):
            chunk = items[begin:begin + capacity]
            self._decode(*map(list, zip(*chunk)))
            rows += [np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(self._context.ctx, i),
                                           shape=(self.n_vocab,)).copy()
                     for i, item in enumerate(chunk) if item[3]]
        return rows

    def _accept(self, sequence: DecodedSequence, token: int, stops: tuple[str, ...], longest_stop: int) -> None:
        if llama_cpp.llama_vocab_is_eog(self.vocab, token):
            sequence.finish, sequence.end_token = "eos", token
        else:
            sequence.ids.append(token)
            text = sequence.utf8.decode(self._piece(token))  # holds back a character split across tokens
            if text:
                searched = max(0, len(sequence.text) - longest_stop + 1)
                sequence.text += text
                cut = _first_stop(sequence.text, stops, searched)
                if cut is not None:
                    sequence.text, sequence.finish = sequence.text[:cut], "stop"
                    return
            if len(sequence.ids) >= sequence.budget:
                sequence.finish = "length"
        if sequence.finish:  # a character left half-written at the end shows as U+FFFD
            sequence.text += sequence.utf8.decode(b"", final=True)

    def _piece(self, token: int) -> bytes:
        piece = self._pieces.get(token)
        if piece is None:
            size = 64
            buffer = ctypes.create_string_buffer(size)
            length = llama_cpp.llama_token_to_piece(self.vocab, token, buffer, size, 0, False)
            if length < 0:
                size = -length
                buffer = ctypes.create_string_buffer(size)
                length = llama_cpp.llama_token_to_piece(self.vocab, token, buffer, size, 0, False)
            piece = self._pieces[token] = buffer.raw[:length]
        return piece

    # -- the context and its batch ---------------------------------------------------------------
    def _ensure_context(self, sequences: int, cells: int, unified: bool = True) -> None:
        """A context for `sequences` sequences and `cells` KV cells: one cache all sequences share
        (`unified`), or one stream of cells/sequences cells for each."""
        cells = -(-cells // CONTEXT_STEP) * CONTEXT_STEP
        have_sequences, have_cells, have_unified = self._size
        if self._context is not None and have_unified == unified and (
                (unified and have_sequences >= sequences and have_cells >= cells)
                or (not unified and have_sequences == sequences and have_cells >= cells)):
            return
        self.close()
        if unified:
            sequences, cells = max(sequences, have_sequences if have_unified else 0), max(cells, have_cells if have_unified else 0)
        params = llama_cpp.llama_context_params.from_buffer_copy(self.llm.context_params)
        params.n_seq_max = sequences
        params.n_ctx = cells
        params.kv_unified = unified
        params.n_batch = params.n_ubatch = max(512, sequences)
        logger = logging.getLogger("llama-cpp-python")
        level = logger.level
        logger.setLevel(logging.CRITICAL)  # llama.cpp warns that the context is longer than the model's
        try:
            self._context = _internals.LlamaContext(model=self.llm._model, params=params, verbose=False)
        finally:
            logger.setLevel(level)
        self._holder = _internals.LlamaBatch(n_tokens=params.n_batch, embd=0, n_seq_max=1, verbose=False)
        self._batch = self._holder.batch
        capacity = params.n_batch
        self._tokens = np.ctypeslib.as_array(self._batch.token, shape=(capacity,))
        self._positions = np.ctypeslib.as_array(self._batch.pos, shape=(capacity,))
        self._seq_counts = np.ctypeslib.as_array(self._batch.n_seq_id, shape=(capacity,))
        self._outputs = np.ctypeslib.as_array(self._batch.logits, shape=(capacity,))
        self._size = (sequences, cells, unified)

    def _decode(self, tokens: list[int], positions: list[int], slots: list[int], outputs) -> None:
        count = len(tokens)
        self._batch.n_tokens = count
        self._tokens[:count] = tokens
        self._positions[:count] = positions
        self._seq_counts[:count] = 1
        self._outputs[:count] = outputs
        seq_ids = self._batch.seq_id
        for i, slot in enumerate(slots):
            seq_ids[i][0] = slot
        result = llama_cpp.llama_decode(self._context.ctx, self._batch)
        if result != 0:
            raise RuntimeError(f"llama_decode failed ({result}) on {count} tokens")

    def close(self) -> None:
        if self._batch is not None:
            self._holder.close()
            self._batch = self._holder = None
        if self._context is not None:
            self._context.close()
            self._context = None


def prompt_groups(flat: list[list[int]], size: int) -> list[tuple[int, int]]:
    """The request's runs of one prompt (its n samples sit next to each other), each cut to at most
    `size` sequences: a group is admitted together, its prompt prefilled once and copied."""
    groups, start = [], 0
    for i in range(1, len(flat) + 1):
        if i == len(flat) or flat[i] != flat[start] or i - start == size:
            groups.append((start, i))
            start = i
    return groups


def admits(reserved: int, live: int, cost: int, size: int, max_cells: int, max_sequences: int) -> bool:
    """Whether a group of `size` sequences needing `cost` KV cells joins the `live` ones, whose
    groups reserve `reserved` cells: always when none is live (a group that alone is over the cap
    still runs), else within both caps.

    Why a cell cap: in the unified cache every sequence's attention runs over every cell in use,
    so a step costs (live sequences) x (cells). Distinct long prompts pay for that
    (benchmarks/batch_waves.py, SmolLM2 f16, 2 cores, 12 distinct 1,000-token prompts, 256 new
    tokens: one wave 10.8 tok/s; waves of 8,192 cells 15.5, 4,096 21.3, 1,536 (one prompt a wave)
    30.8). The samples of one prompt are never parted by the cap: a further group would prefill
    the prompt again, and they attend over the same cells anyway (benchmarks/puzzle_funnel.py, 64
    puzzles from one 1,829-token prompt: waves of 11 under the cap 50 tok/s, one wave 78)."""
    return live == 0 or (live + size <= max_sequences and reserved + cost <= max_cells)


def choose_tokens(logits: np.ndarray, params: SamplingParams, rngs: list[np.random.Generator]) -> np.ndarray:
    """One token per row: greedy at temperature 0, else sampled as the transformers backend does
    (top-k keeping ties with the k-th logit, softmax at the temperature, then top-p), with row i's
    draw from rngs[i]."""
    if params.temperature == 0:
        return logits.argmax(axis=1)
    rows, vocab = logits.shape
    scaled = logits / np.float32(params.temperature)
    if 0 < params.top_k < vocab:
        kth = np.partition(scaled, vocab - params.top_k, axis=1)[:, vocab - params.top_k]
        scaled[scaled < kth[:, None]] = -np.inf
    scaled -= scaled.max(axis=1, keepdims=True)
    probs = np.exp(scaled, out=scaled)
    probs /= probs.sum(axis=1, keepdims=True)
    draws = np.array([rng.random() for rng in rngs])
    chosen = np.empty(rows, dtype=np.int64)
    for i in range(rows):
        candidates, weights = _nucleus(probs[i], params.top_p)
        cumulative = np.cumsum(weights)
        chosen[i] = candidates[min(int(np.searchsorted(cumulative, draws[i] * cumulative[-1], side="right")),
                                   len(candidates) - 1)]
    return chosen


def _nucleus(probs: np.ndarray, top_p: float) -> tuple[np.ndarray, np.ndarray]:
    """The tokens top-p keeps (each one whose more likely tokens sum to at most top_p) and their
    probabilities; all tokens with a chance when top_p is 1."""
    candidates = np.flatnonzero(probs)
    if top_p >= 1.0:
        return candidates, probs[candidates]
    size = 64  # sort only the most likely tokens, enough of them to pass top_p
    while size < len(candidates):
        top = candidates[np.argpartition(probs[candidates], len(candidates) - size)[len(candidates) - size:]]
        if probs[top].sum() > top_p:
            candidates = top
            break
        size *= 8
    order = candidates[np.argsort(-probs[candidates], kind="stable")]
    weights = probs[order]
    keep = np.cumsum(weights) - weights <= top_p
    return order[keep], weights[keep]



def _first_stop(text: str, stops: tuple[str, ...], start: int) -> int | None:
    found = [p for p in (text.find(s, start) for s in stops) if p >= 0]
    return min(found) if found else None
