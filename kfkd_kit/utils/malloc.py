"""CPU: keep freed memory in the process for reuse during a fit (glibc's malloc settings).

glibc serves allocations above 32 MB with mmap and returns them to the OS when freed, so
every training step of a CNN on CPU page-faults its big activations (145 MB for the first
conv's output at batch size 128) back in, zero-filled by the kernel: measured here, about
a third of a net2 epoch. For the duration of a fit (``KeypointNet.fit_loop`` on a CPU,
unless ``fast_path=False``), malloc is told to take everything from its heap and to keep
freed memory there; afterwards the defaults are restored and the memory trimmed. A no-op
where the C library is not glibc.
"""
from __future__ import annotations

import contextlib
import ctypes
import threading

_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
_GLIBC_DEFAULTS = {_M_TRIM_THRESHOLD: 128 * 1024, _M_MMAP_MAX: 65536}
_reuse_lock = threading.Lock()
_reuse_depth = 0


def _glibc():
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 - only glibc has it
        return libc
    except (OSError, AttributeError):
        return None


@contextlib.contextmanager
def reuse_freed_memory(enabled=True):
    """Within the block, freed memory stays in the process for reuse (glibc only).
    Yields whether it does; blocks nest (the outermost one sets and restores)."""
    global _reuse_depth
    libc = _glibc() if enabled else None
    if libc is None:
        yield False
        return
    with _reuse_lock:
        if _reuse_depth == 0:
            libc.mallopt(_M_MMAP_MAX, 0)
            libc.mallopt(_M_TRIM_THRESHOLD, 2 ** 31 - 1)
        _reuse_depth += 1
    try:
        yield True
    finally:
        with _reuse_lock:
            _reuse_depth -= 1
            if _reuse_depth == 0:
                for option, value in _GLIBC_DEFAULTS.items():
                    libc.mallopt(option, value)
                libc.malloc_trim(0)
