"""A row's heartbeat while long work runs: refreshed from a thread of its own (one model step
can outlast the stall limit), and a cancel request seen in the row turned into the CancelToken
the engine checks between steps."""
from __future__ import annotations

import threading
from collections.abc import Callable

from django.db import DatabaseError, connection
from django.utils import timezone

from engine.lm.generation import CancelToken


class RowHeartbeat:
    def __init__(self, model, pk: int, cancelled: Callable, every_s: float):
        """`cancelled(rows)` gets the row's one-row queryset and says whether to stop."""
        self.rows = model.objects.filter(pk=pk)
        self.cancelled, self.every_s = cancelled, every_s
        self.cancel, self._done = CancelToken(), threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"{model.__name__}-{pk}-heartbeat", daemon=True)

    def _loop(self):
        try:
            while True:
                try:
                    self.rows.update(heartbeat_at=timezone.now())
                    if self.cancelled(self.rows):
                        self.cancel.cancel()
                except DatabaseError:  # the server restarted: beat again on a new connection next time
                    connection.close()
                if self._done.wait(self.every_s):
                    break
        finally:
            connection.close()  # this thread's own connection

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._done.set()
        self._thread.join(timeout=10)
