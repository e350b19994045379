"""An in-memory channel layer that threads can send to (embedded mode).

In embedded mode the Celery workers are threads of the web process. Channels' own
InMemoryChannelLayer puts a message straight into the receiver's asyncio queue from the
sender's thread, which does not wake a receiver waiting on another event loop. This one
remembers which loop receives each channel and hands sends from elsewhere to that loop.
"""
from __future__ import annotations

import asyncio
import time
from copy import deepcopy

from channels.exceptions import ChannelFull
from channels.layers import InMemoryChannelLayer


class ThreadSafeInMemoryChannelLayer(InMemoryChannelLayer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._receiving_loops: dict[str, asyncio.AbstractEventLoop] = {}

    async def receive(self, channel):
        self._receiving_loops[channel] = asyncio.get_running_loop()
        return await super().receive(channel)

    async def send(self, channel, message):
        owner = self._receiving_loops.get(channel)
        if owner is None or owner is asyncio.get_running_loop() or owner.is_closed():
            return await super().send(channel, message)
        assert isinstance(message, dict), "message is not a dict"
        self.require_valid_channel_name(channel)
        owner.call_soon_threadsafe(self._put, channel, deepcopy(message))

    def _put(self, channel, message):
        """On the receiving loop: the same put as the parent's send."""
        queue = self.channels.setdefault(channel, asyncio.Queue(maxsize=self.get_capacity(channel)))
        try:
            queue.put_nowait((time.time() + self.expiry, message))
        except asyncio.QueueFull:
            pass  # like a full Redis channel: dropped (delivery is at most once)

    async def flush(self):
        self._receiving_loops = {}
        await super().flush()


__all__ = ["ChannelFull", "ThreadSafeInMemoryChannelLayer"]
