"""Inference off the event loop: one worker thread, fed by a bounded queue.

The server's event loop only parses requests and writes answers; the decoding, detection and
the net run in ``InferenceQueue``'s one thread, one request at a time (the detectors and the
backends are not shared between threads). At most ``size`` requests wait behind the one
running; one more is refused at once with ``Busy`` (the server's 503 and Retry-After), so a
burst never grows memory without bound: what is held is at most ``size + 1`` requests'
uploads.
"""
from __future__ import annotations

import asyncio
import math
import queue
import threading
import time

__all__ = ["InferenceQueue", "Busy"]

_STOP = object()


class Busy(Exception):
    """The queue is full; ``retry_after``: whole seconds after which a try may succeed."""

    def __init__(self, retry_after: int):
        super().__init__(f"busy: {retry_after} s")
        self.retry_after = retry_after


class InferenceQueue:
    """``await run(function, *args)`` runs ``function(*args)`` in the worker thread and
    returns its result (or raises its exception); ``Busy`` when ``size`` calls are waiting
    already. ``close()`` stops the thread after the calls it holds."""

    def __init__(self, size: int = 8):
        if size < 1:
            raise ValueError(f"the queue must hold at least 1 request, got {size}")
        self.size = size
        self.jobs: queue.Queue = queue.Queue(maxsize=size)
        self.seconds = 1.0            # a running mean of a call's duration, for Retry-After
        self.thread = threading.Thread(target=self._work, name="kfkd-inference", daemon=True)
        self.thread.start()

    @property
    def waiting(self) -> int:
        return self.jobs.qsize()

    def retry_after(self) -> int:
        """Seconds until the queue has likely room: the calls ahead times a call's mean."""
        return max(1, math.ceil(self.seconds * (self.size + 1)))

    async def run(self, function, *args):
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        try:
            self.jobs.put_nowait((function, args, future, loop))
        except queue.Full:
            raise Busy(self.retry_after()) from None
        return await future

    def _work(self):
        while True:
            job = self.jobs.get()
            if job is _STOP:
                return
            function, args, future, loop = job
            start = time.perf_counter()
            try:
                result, error = function(*args), None
            except Exception as exc:  # handed to the request that asked, not lost here
                result, error = None, exc
            self.seconds = 0.8 * self.seconds + 0.2 * (time.perf_counter() - start)
            try:
                loop.call_soon_threadsafe(_settle, future, result, error)
            except RuntimeError:      # the loop closed while the call ran
                pass

    def close(self, timeout: float = 30.0):
        self.jobs.put(_STOP, timeout=timeout)
        self.thread.join(timeout)


def _settle(future, result, error):
    if future.cancelled():            # the client went away
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
