"""Length-prefixed JSON messages over pipes, read incrementally and with size caps.

Used between the service and its sandbox workers, and between a worker and each run.
A run may send anything at all on its pipe, so the reader never trusts a length.
"""
from __future__ import annotations

import json
import os
import struct
from collections import deque
from json.encoder import c_make_encoder, encode_basestring_ascii

from engine.sandbox.pristine import BUILTINS

__builtins__ = BUILTINS  # noqa: A001 - names here resolve in the pristine builtins (see pristine.py)

HEADER = struct.Struct(">I")


class FrameError(ValueError):
    """The byte stream is not a sequence of well-formed messages within the caps."""


def _not_json(value):
    raise TypeError(f"a value of type {type(value).__name__} cannot be sent as JSON")


def to_json(message) -> str:
    """json.dumps(message, separators=(",", ":"), allow_nan=False), through the C encoder when
    there is one: json's Python layer looks names up in the `builtins` module a run may have
    patched, and `json.dumps` itself can be replaced (see pristine.py)."""
    if c_make_encoder is None:
        return json.dumps(message, separators=(",", ":"), allow_nan=False)
    return "".join(c_make_encoder({}, _not_json, encode_basestring_ascii, None, ":", ",", False, False, False)(message, 0))


def encode(message: dict) -> bytes:
    body = to_json(message).encode()
    return HEADER.pack(len(body)) + body


def write_message(fd: int, message: dict, _write=os.write) -> None:
    data = memoryview(encode(message))
    while data:
        data = data[_write(fd, data):]


class FrameReader:
    """Feed bytes as they arrive; complete messages queue up in `messages`.

    `max_message` caps one message; `max_total` (optional) caps the whole stream.
    """

    def __init__(self, max_message: int, max_total: int | None = None):
        self.max_message = max_message
        self.max_total = max_total
        self.buffer = bytearray()
        self.total = 0
        self.messages: deque[dict] = deque()

    def feed(self, chunk: bytes) -> None:
        self.total += len(chunk)
        if self.max_total is not None and self.total > self.max_total:
            raise FrameError(f"more than {self.max_total} bytes sent back")
        self.buffer += chunk
        while len(self.buffer) >= HEADER.size:
            (size,) = HEADER.unpack_from(self.buffer)
            if size > self.max_message:
                raise FrameError(f"a message of {size} bytes is over the {self.max_message}-byte cap")
            end = HEADER.size + size
            if len(self.buffer) < end:
                break
            body = bytes(self.buffer[HEADER.size:end])
            del self.buffer[:end]
            try:
                message = json.loads(body)
            except (ValueError, RecursionError):
                raise FrameError("a message is not valid JSON") from None
            if not isinstance(message, dict):
                raise FrameError("a message is not a JSON object")
            self.messages.append(message)

    def read_message(self, fd: int) -> dict | None:
        """Blocking: the next message from `fd`, or None at end of stream."""
        while not self.messages:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return None
            self.feed(chunk)
        return self.messages.popleft()
