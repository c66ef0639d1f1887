"""Atomic file writes: readers see the old file or the complete new one, never a partial one;
and ``create_unique`` for outputs that must never replace an earlier one."""
from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import numpy as np


def _umask() -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextmanager
def atomic_write(path, mode: str = "w", *, fsync: bool = False, encoding: str = "utf-8",
                 newline: str | None = None):
    """Write ``path`` atomically: ``with atomic_write(p, "wb") as f: f.write(...)``.

    The data go to a temporary file in the same folder, which replaces ``path`` (os.replace)
    only when the block ends without an exception; on an exception the temporary file is
    removed and ``path`` is left as it was. ``fsync=True`` also flushes the file and the
    folder to disk before and after the rename (slower; for data that must survive a power
    cut). The new file gets the usual permissions (0o666 less the umask), or those of the
    file it replaces. ``mode`` is "w" (text, ``encoding``/``newline`` as for open()) or "wb".
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write: mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    folder = path.parent
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    try:
        try:
            permissions = os.stat(path).st_mode & 0o7777
        except FileNotFoundError:
            permissions = 0o666 & ~_umask()
        os.chmod(tmp, permissions)
        text = {} if mode == "wb" else {"encoding": encoding, "newline": newline}
        with os.fdopen(fd, mode, **text) as f:
            fd = None                     # the file object owns it now
            yield f
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if fd is not None:
            os.close(fd)
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    if fsync:
        _fsync_folder(folder)


@contextmanager
def atomic_path(path):
    """For writers that open the file themselves (OpenCV's VideoWriter): yields a temporary
    path in the same folder, with the same ending (the writer picks its format by it), that
    replaces ``path`` only when the block ends without an exception; else it is removed."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:                       # e.g. Windows cannot open folders
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _jsonable(value):
    """json.dump's fallback for numpy scalars/arrays, tuples, sets, paths and the rest."""
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (tuple, set)):
        return list(value)
    return str(value)


def write_json(path, payload) -> Path:
    """Write ``payload`` as indented JSON, atomically."""
    with atomic_write(path, "w") as f:
        json.dump(payload, f, indent=2, default=_jsonable)
        f.write("\n")
    return Path(path)


def write_csv(path, frame) -> Path:
    """Write a DataFrame as CSV (no index), atomically."""
    with atomic_write(path, "w", newline="") as f:
        frame.to_csv(f, index=False)
    return Path(path)


def save_figure(figure, path) -> Path:
    """A matplotlib figure as a PNG (100 dpi, tight box), atomically: a reader never sees a
    half-written image. The figure stays open (the caller closes it)."""
    path = Path(path)
    with atomic_write(path, "wb") as f:
        figure.savefig(f, format="png", dpi=100, bbox_inches="tight")
    return path


def _numbered(path: Path, k: int, folder=False) -> Path:
    """path, then <stem>-k<suffix> (a folder: <name>-k, as a dot in its name is no suffix)."""
    if k == 1:
        return path
    return path.with_name(f"{path.name}-{k}" if folder else f"{path.stem}-{k}{path.suffix}")


def create_unique(path, content: str | bytes | None = None) -> Path:
    """A new file (``content``) or, with ``content=None``, a new empty folder at ``path``, or
    at the first free one of ``<stem>-2<suffix>``, ``-3``, ...; returns the path created.

    Never replaces anything, even when another process picks the same name at the same
    moment: a folder is made with mkdir, which fails on an existing name; a file is written
    whole to a temporary file first and then given its name with os.link, which fails
    rather than replace, so no reader ever sees it partial.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if content is None:
        for k in range(1, 10_000):
            try:
                _numbered(path, k, folder=True).mkdir()
                return _numbered(path, k, folder=True)
            except FileExistsError:
                continue
        raise FileExistsError(f"{path}: too many folders of this name")
    data = content.encode("utf-8") if isinstance(content, str) else content
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o666 & ~_umask())
        for k in range(1, 10_000):
            candidate = _numbered(path, k)
            try:
                os.link(tmp, candidate)
                return candidate
            except FileExistsError:
                continue
            except OSError:                   # no hard links here: reserve the name, then fill it
                try:
                    os.close(os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
                except FileExistsError:
                    continue
                os.replace(tmp, candidate)
                return candidate
        raise FileExistsError(f"{path}: too many files of this name")
    finally:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass


def utc_stamp(when=None) -> str:
    """A UTC time for file names: 20261129T041500Z."""
    when = when or datetime.now(timezone.utc)
    return when.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def write_section(path, name: str, text: str) -> Path:
    """Replace the part of a Markdown file between ``<!-- begin NAME -->`` and
    ``<!-- end NAME -->`` with ``text`` (appended, with its markers, where there is none),
    atomically; so several generators can share one file without erasing each other."""
    path = Path(path)
    begin, end = f"<!-- begin {name} -->", f"<!-- end {name} -->"
    block = f"{begin}\n{text.rstrip()}\n{end}"
    old = path.read_text(encoding="utf-8") if path.is_file() else ""
    if begin in old and end in old.split(begin, 1)[1]:
        head, rest = old.split(begin, 1)
        new = head + block + rest.split(end, 1)[1]
    else:
        new = (old.rstrip() + "\n\n" if old.strip() else "") + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "w") as f:
        f.write(new)
    return path
