"""The Image fields -> uint8 (n, 9216), with no Python work per value.

The fields are copied, a quarter of a megabyte at a time, into a byte buffer whose digits
become numbers by shifted-array arithmetic, read out at the last digit of each number
(np.flatnonzero, take), on two threads. A bad field is detected the same way, then located
by a plain value-by-value check of the first bad chunk.
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..utils import progress
from ..keypoints import N_PIXELS
from ._errors import show

_CHUNK_BYTES = 1 << 18            # image text parsed per step: fits the L2 cache with its temporaries
_THREADS = max(1, min(2, os.cpu_count() or 1))
_PROGRESS_ROWS = 2000             # a parse of fewer rows (well under a second) shows no bar


class _PixelKernel:
    """Parses a block of Image fields held in one byte buffer; owns its scratch arrays.

    The buffer is 2 spaces, then each field followed by "\\n". With d = byte - 48, a digit's
    value, and y = d + 10 at digits, 0 elsewhere, every byte i gets
        lo[i] = 10 y[i-1] + d[i]      d[i] for 1 digit, 100 + the number for 2 or more
        hi[i] = y[i-2] if i-1 is a digit, else 0       10 + the hundreds digit for 3 or more
    (uint8 arithmetic, whole-array operations). np.flatnonzero finds the last digit of every
    number (a digit followed by a non-digit), and only there are lo and hi read out. The
    number of digits these account for must equal the number of digits in the buffer (else
    some number has 4 or more), and each row must give exactly 9216 numbers, all <= 255.
    """

    def __init__(self, capacity: int):
        self.c = np.empty(capacity, np.uint8)
        self.d = np.empty(capacity, np.uint8)
        self.isd = np.empty(capacity, np.bool_)
        self.mask = np.empty(capacity, np.bool_)
        self.y = np.empty(capacity, np.uint8)
        self.lo = np.empty(capacity, np.uint8)
        self.hi = np.empty(capacity, np.uint8)

    def run(self, mv, starts, ends, out) -> bool:
        """Parse rows mv[starts[i]:ends[i]] into ``out`` (len(starts), 9216); False if any
        byte is not a digit or a space, or a row is not 9216 integers 0..255."""
        c = self.c
        c[:2] = 32
        p = 2
        offsets = []
        for s, e in zip(starts, ends):
            offsets.append(p)
            q = p + (e - s)
            c[p:q] = mv[s:e]
            c[q] = 10
            p = q + 1
        offsets.append(p)
        L = p
        cc = c[:L]
        d = np.subtract(cc, 48, out=self.d[:L])
        isd = np.less(d, 10, out=self.isd[:L])
        isd8 = isd.view(np.uint8)
        n_digits = np.count_nonzero(isd)
        n_spaces = np.count_nonzero(np.equal(cc, 32, out=self.mask[:L]))
        if n_digits + n_spaces + len(starts) != L:
            return False
        # positions i = 2 .. L-2, stored at index i - 2
        at, nxt, back1, back2 = slice(2, L - 1), slice(3, L), slice(1, L - 2), slice(0, L - 3)
        y = np.add(d, 10, out=self.y[:L])
        y *= isd8
        lo = np.multiply(y[back1], 10, out=self.lo[:L - 3])
        lo += d[at]
        hi = np.multiply(y[back2], isd8[back1], out=self.hi[:L - 3])
        last = np.flatnonzero(np.greater(isd[at], isd[nxt], out=self.mask[:L - 3]))
        per_row = np.diff(np.searchsorted(last, np.array(offsets) - 2))
        if (per_row != N_PIXELS).any():
            return False
        lo = lo.take(last)
        hi = hi.take(last)
        two = lo >= 100                      # numbers of 2 or 3 digits
        three = hi >= 10                     # numbers of 3 digits
        if len(last) + np.count_nonzero(two) + np.count_nonzero(three) != n_digits:
            return False
        value = hi.astype(np.uint16)
        value -= three * np.uint16(10)       # the hundreds digit
        value *= 100
        lo -= two * np.uint8(100)            # the last two digits
        value += lo
        if value.max() > 255:
            return False
        out[...] = value.reshape(len(starts), N_PIXELS)
        return True


def parse_pixels(text: bytes, starts: np.ndarray, ends: np.ndarray):
    """(uint8 (n, 9216), problem or None) for the Image fields text[starts[i]:ends[i]]."""
    n = len(starts)
    X = np.empty((n, N_PIXELS), dtype=np.uint8)
    if n == 0:
        return X, None
    mv = memoryview(text)
    lengths = ends - starts + 1
    chunks, r0, size = [], 0, 0
    for r, length in enumerate(lengths.tolist()):
        size += length
        if size >= _CHUNK_BYTES:
            chunks.append((r0, r + 1))
            r0, size = r + 1, 0
    if r0 < n:
        chunks.append((r0, n))
    capacity = 8 + max(int(lengths[a:b].sum()) for a, b in chunks)
    first_bad = [len(chunks)]
    lock = threading.Lock()
    shown = n >= _PROGRESS_ROWS or progress.forced()
    bar = progress.bar(total=n, desc="parsing images", unit="row", **({} if shown else {"disable": True}))

    def work(worker: int, n_workers: int):
        kernel = _PixelKernel(capacity)
        for i in range(worker, len(chunks), n_workers):
            if i > first_bad[0]:
                return
            a, b = chunks[i]
            if not kernel.run(mv, starts[a:b].tolist(), ends[a:b].tolist(), X[a:b]):
                with lock:
                    first_bad[0] = min(first_bad[0], i)
                continue
            bar.update(b - a)

    n_workers = min(_THREADS, len(chunks))
    with bar:
        if n_workers == 1:
            work(0, 1)
        else:
            with ThreadPoolExecutor(n_workers) as pool:
                for f in [pool.submit(work, w, n_workers) for w in range(n_workers)]:
                    f.result()
    if first_bad[0] == len(chunks):
        return X, None
    a, b = chunks[first_bad[0]]
    for r in range(a, b):
        problem = _pixel_problem(mv[starts[r]:ends[r]])
        if problem is not None:
            return None, (r, "Image", problem)
    raise AssertionError("pixel parser: fast and slow checks disagree")   # pragma: no cover


def _pixel_problem(field) -> str | None:
    """What is wrong with one Image field, checked value by value (used on errors only)."""
    values = [t for t in bytes(field).split(b" ") if t]
    for k, t in enumerate(values):
        if not (t.isdigit() and len(t) <= 3 and int(t) <= 255):
            return f"pixel {k + 1} is {show(t)}, expected an integer 0..255"
    if len(values) != N_PIXELS:
        return f"expected {N_PIXELS} pixel values, got {len(values)}"
    return None
