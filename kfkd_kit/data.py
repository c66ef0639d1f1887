"""Kaggle's files -> numpy arrays: uint8 images, pixel keypoints with NaN.

Public API::

    find_file(folder, stem)        -> Path | None   stem.csv, .csv.gz, .zip or .csv.zip
    has_kaggle_data(folder)        -> bool          a training file is there
    data_folder(folder)            -> Path          folder, if it is an existing folder (submit)
    resolve_data_dir(folder)       -> Path          folder, or the built-in synthetic set inside it
                                                    when it holds no Kaggle file at all (train)
    load_training(folder_or_file)  -> TrainingData  X, y, source, fingerprint
    load_test(folder_or_file)      -> TestData      image_ids, X, source, fingerprint
    load_lookup(folder_or_file)    -> DataFrame     RowId, ImageId, FeatureName
    DataError                      a ValueError whose message is one line naming the file, the
                                   row (or line) and the column at fault

``X`` is uint8 (n, 9216), ``y`` float32 (n, 30) in pixels, in Kaggle's column order
(keypoints.FEATURE_NAMES), NaN where a keypoint is missing. In messages, "row N" is the N-th
data row of the file (blank lines are skipped) and "line N" the line number in the file.
``fingerprint`` is the first 16 hex digits of the sha256 of the file's bytes (as stored: the
zip or gz file itself), which the JSON beside a model records.

Parsing is vectorised, with no Python work per value: the Image fields are copied, a quarter
of a megabyte at a time, into a byte buffer whose digits become numbers by shifted-array
arithmetic, read out at the last digit of each number (np.flatnonzero, take), on two threads;
the keypoint columns go through pandas' C parser. Kaggle's 7049-row training.csv parses in
about 0.8 s on two cores. Errors are detected the same way, then located by a plain per-row
check of the first bad chunk. Every load parses the file afresh: there is no cache.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import os
import re
import threading
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import progress
from .keypoints import FEATURE_NAMES, IMAGE_SIDE, N_PIXELS, N_TARGETS

__all__ = ["DataError", "TrainingData", "TestData", "find_file", "has_kaggle_data",
           "data_folder", "resolve_data_dir", "load_training", "load_test", "load_lookup"]

SUFFIXES = (".csv", ".csv.gz", ".zip", ".csv.zip")
_CHUNK_BYTES = 1 << 18            # image text parsed per step: fits the L2 cache with its temporaries
_THREADS = max(1, min(2, os.cpu_count() or 1))
_PROGRESS_ROWS = 2000             # a parse of fewer rows (well under a second) shows no bar
_LOOKUP_COLUMNS = ("RowId", "ImageId", "FeatureName")


class DataError(ValueError):
    """Input data we cannot use. The message is one line: file, row or line, column, problem."""


@dataclass
class TrainingData:
    """Kaggle's training set: ``X`` uint8 (n, 9216); ``y`` float32 (n, 30) pixels, NaN if missing."""
    X: np.ndarray
    y: np.ndarray
    source: Path
    fingerprint: str

    def __len__(self):
        return len(self.X)


@dataclass
class TestData:
    """Kaggle's test set: ``image_ids`` int64 (n,), ``X`` uint8 (n, 9216)."""
    __test__ = False              # not a pytest test class
    image_ids: np.ndarray
    X: np.ndarray
    source: Path
    fingerprint: str

    def __len__(self):
        return len(self.X)


# --------------------------------------------------------------------------- finding files

def find_file(folder, stem: str) -> Path | None:
    """``folder/stem`` as .csv, .csv.gz, .zip or .csv.zip (in that order), or None.

    A name differing only in case (``idlookuptable.csv``) is found too.
    """
    folder = Path(folder)
    for suffix in SUFFIXES:
        candidate = folder / f"{stem}{suffix}"
        if candidate.is_file():
            return candidate
    try:
        by_lower_name = {p.name.lower(): p for p in folder.iterdir() if p.is_file()}
    except OSError:
        return None
    for suffix in SUFFIXES:
        candidate = by_lower_name.get(f"{stem}{suffix}".lower())
        if candidate is not None:
            return candidate
    return None


def has_kaggle_data(folder) -> bool:
    """Whether ``folder`` holds a Kaggle training file (any of the accepted forms)."""
    return find_file(folder, "training") is not None


SYNTHETIC_FOLDER = "synthetic"
KAGGLE_STEMS = ("training", "test", "IdLookupTable")


def data_folder(folder) -> Path:
    """``folder`` as a Path if it is an existing folder; FileNotFoundError or
    NotADirectoryError (one line, naming it) otherwise. Nothing is generated."""
    folder = Path(folder)
    if not folder.exists():
        raise FileNotFoundError(f"{folder}: no such folder (expected the folder holding "
                                f"Kaggle's training.csv, test.csv and IdLookupTable.csv)")
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder}: not a folder (expected the folder holding "
                                 f"Kaggle's training.csv, test.csv and IdLookupTable.csv)")
    return folder


def resolve_data_dir(folder, say=print) -> Path:
    """The folder holding the training data: ``folder`` itself when it has a training file.

    The built-in synthetic data set (``folder/synthetic``, generated once) stands in only
    when ``folder`` holds no Kaggle file at all (no training, test or lookup file) or does
    not exist yet, and ``say`` then prints one line starting with "NOTE:". A folder that
    holds a test or lookup file but no training file is an error naming the missing file
    (FileNotFoundError), as is a path that is not a folder (NotADirectoryError): the user's
    files are never silently replaced. Used by train, cv, grid and zoo; submit reads the
    test and lookup files of the folder it is given (``data_folder``), never synthetic ones.
    """
    from . import synthetic
    folder = Path(folder)
    if folder.exists():
        data_folder(folder)
    if has_kaggle_data(folder):
        return folder
    present = [p.name for p in (find_file(folder, stem) for stem in KAGGLE_STEMS[1:]) if p]
    if present:
        tried = ", ".join("training" + s for s in SUFFIXES)
        raise FileNotFoundError(f"{folder}: no training file (looked for {tried}); the folder "
                                f"holds {' and '.join(present)}, so the built-in synthetic "
                                f"data is not used in its place")
    fallback = folder / SYNTHETIC_FOLDER
    if not has_kaggle_data(fallback):
        say(f"NOTE: no Kaggle training file in {folder}/: generating the built-in SYNTHETIC "
            f"faces into {fallback}/ and training on them, not on real data")
        synthetic.write_kaggle_dataset(fallback, seed=0)
    else:
        say(f"NOTE: no Kaggle training file in {folder}/: using the built-in SYNTHETIC faces "
            f"in {fallback}/, not real data")
    return fallback


def _resolve(folder_or_file, stem: str) -> Path:
    path = Path(folder_or_file)
    if path.is_dir():
        found = find_file(path, stem)
        if found is None:
            tried = ", ".join(stem + s for s in SUFFIXES)
            raise FileNotFoundError(f"{path}: no {stem} file (looked for {tried})")
        path = found
    elif not path.is_file():
        raise FileNotFoundError(f"{path}: no such file or folder")
    return path.resolve()


def _unpack(path: Path, raw: bytes) -> tuple[str, bytes]:
    """(name used in messages, CSV bytes) of a plain, gzipped or zipped file."""
    lower = path.name.lower()
    if lower.endswith(".gz"):
        try:
            return path.name, gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(f"{path.name}: not a readable gzip file ({e})") from None
    if lower.endswith(".zip"):
        try:
            archive = zipfile.ZipFile(io.BytesIO(raw))
            members = [m for m in archive.infolist()
                       if not m.is_dir() and not m.filename.startswith("__MACOSX/")]
            stem = lower[:-4].removesuffix(".csv")
            exact = [m for m in members if m.filename.rsplit("/", 1)[-1].lower() == f"{stem}.csv"]
            csvs = [m for m in members if m.filename.lower().endswith(".csv")]
            chosen = exact or csvs
            if len(chosen) != 1:
                names = ", ".join(m.filename for m in members) or "nothing"
                raise DataError(f"{path.name}: expected one CSV file inside, found {names}")
            return f"{chosen[0].filename} in {path.name}", archive.read(chosen[0])
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as e:
            raise DataError(f"{path.name}: not a readable zip file ({e})") from None
    return path.name, raw


def _fingerprint(raw) -> str:
    return hashlib.sha256(raw).hexdigest()[:16]


def _show(value, limit=40) -> str:
    """A cell's text for a one-line message."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        value = bytes(value).decode("utf-8", "replace")
    value = str(value)
    if len(value) > limit:
        value = value[:limit] + "..."
    return repr(value)


# --------------------------------------------------------------------------- CSV with an Image column

class _Table:
    """Rows of a CSV whose ``Image`` column holds space-separated pixels."""

    def __init__(self, text: bytes, name: str, value_columns: tuple, describe: str):
        self.text = text
        self.name = name
        self.describe = describe
        if not text or text.isspace():
            raise DataError(f"{name}: line 1: the file is empty; expected a header with {describe}")
        start = 3 if text.startswith(b"\xef\xbb\xbf") else 0       # a UTF-8 byte order mark
        end = text.find(b"\n")
        end = len(text) if end < 0 else end
        header = text[start:end].rstrip(b"\r").decode("utf-8", "replace")
        self.columns = [c.strip().strip('"').strip() for c in header.split(",")]
        self._check_header(set(value_columns) | {"Image"}, value_columns)
        self.image_col = self.columns.index("Image")
        self.other_columns = [c for c in self.columns if c != "Image"]
        self.body_start = end + 1
        self._split_rows()

    def where(self, row: int) -> str:
        """'row N (line M)' for 0-based data row ``row``."""
        line = self.text.count(b"\n", 0, self.line_starts[row]) + 1
        return f"row {row + 1} (line {line})"

    def error(self, row: int, column: str, problem: str) -> DataError:
        return DataError(f"{self.name}: {self.where(row)}, column {column}: {problem}")

    def _check_header(self, allowed: set, value_columns: tuple):
        seen = set()
        for i, c in enumerate(self.columns):
            if c not in allowed:
                raise DataError(f"{self.name}: line 1 (header), column {_show(c)} (position {i + 1}): "
                                f"not expected here; the header must have {self.describe}")
            if c in seen:
                raise DataError(f"{self.name}: line 1 (header), column {c}: appears twice")
            seen.add(c)
        for c in (*value_columns, "Image"):
            if c not in seen:
                raise DataError(f"{self.name}: line 1 (header), column {c}: missing; "
                                f"the header must have {self.describe}")

    def _split_rows(self):
        """Locate every data row and its Image field; other fields go to ``self.others``.

        A row whose Image field cannot be located (too few commas) ends the scan; it is
        recorded in ``self.split_error`` and reported if no earlier row has a problem.
        """
        text, n = self.text, len(self.text)
        mv = memoryview(text)
        k, ncols = self.image_col, len(self.columns)
        line_starts, img_start, img_end, others = [], [], [], []
        self.split_error = None
        pos = self.body_start
        while pos < n:
            nl = text.find(b"\n", pos)
            if nl < 0:
                nl = n
            end = nl - 1 if nl > pos and text[nl - 1] == 13 else nl
            if end == pos or (end - pos < 64 and not text[pos:end].strip()):
                pos = nl + 1                              # blank line
                continue
            if k == ncols - 1:                            # Image last, as in Kaggle's files
                c = text.rfind(b",", pos, end) if ncols > 1 else pos - 1
                s, e = c + 1, end
                other = mv[pos:c] if c >= pos else None
            else:
                c = pos - 1
                for _ in range(k):
                    c = text.find(b",", c + 1, end)
                    if c < 0:
                        break
                if c < 0 and k > 0:
                    other = None
                else:
                    s = c + 1
                    e = text.find(b",", s, end)
                    if e < 0:
                        other = None
                    elif k == 0:
                        other = mv[e + 1:end]
                    else:
                        other = bytes(mv[pos:s - 1]) + bytes(mv[e:end])
            line_starts.append(pos)
            if other is None:
                row = len(line_starts) - 1
                commas = text.count(b",", pos, end)
                self.split_error = (row, self._count_problem(commas + 1))
                break
            if e - s >= 2 and text[s] == 34 and text[e - 1] == 34:     # "quoted" pixels
                s, e = s + 1, e - 1
            img_start.append(s)
            img_end.append(e)
            others.append(other)
            pos = nl + 1
        self.line_starts = line_starts
        self.img_start = np.array(img_start, dtype=np.int64)
        self.img_end = np.array(img_end, dtype=np.int64)
        self.others = others
        self.n_rows = len(img_start)
        if self.n_rows == 0 and self.split_error is None:
            raise DataError(f"{self.name}: no data rows after the header (line 1)")

    def _count_problem(self, got: int) -> tuple[str, str]:
        """(column, problem) for a row with ``got`` fields."""
        expected = len(self.columns)
        if got < expected:
            return self.columns[got], f"missing: the row has {got} fields, the header {expected}"
        return f"#{expected + 1}", f"unexpected: the row has {got} fields, the header {expected}"

    def parse(self, value_dtype, check_values=None) -> tuple[pd.DataFrame, np.ndarray]:
        """(other columns as a DataFrame, pixels uint8 (n, 9216)); DataError on a bad row.

        ``check_values(frame)`` may return the first (row, column, problem) of parsed values
        that are well-formed but not acceptable (e.g. out of range), or None.
        """
        problems = []                                 # (row, column, message), any order
        if self.split_error is not None:
            row, (column, problem) = self.split_error
            problems.append((row, column, problem))
        limit = self.n_rows
        joined = b"\n".join(self.others[:limit])
        count_problem = self._check_field_counts(joined, limit)
        if count_problem is not None:
            problems.append(count_problem)
            limit = count_problem[0]
            joined = b"\n".join(self.others[:limit])
        values, value_problem = self._parse_values(joined, limit, value_dtype)
        if value_problem is None and check_values is not None:
            value_problem = check_values(values)
        if value_problem is not None:
            problems.append(value_problem)
            limit = value_problem[0]
        X, pixel_problem = _parse_pixels(self.text, self.img_start[:limit], self.img_end[:limit])
        if pixel_problem is not None:
            problems.append(pixel_problem)
        if problems:
            row, column, problem = min(problems, key=lambda p: p[0])
            raise self.error(row, column, problem)
        return values, X

    def _check_field_counts(self, joined: bytes, n_rows: int):
        if n_rows == 0:
            return None
        b = np.frombuffer(joined, dtype=np.uint8)
        lengths = np.fromiter((len(o) for o in self.others[:n_rows]), dtype=np.int64, count=n_rows)
        ends = np.cumsum(lengths + 1) - 1             # position of each row's "\n" (or the end)
        commas = np.concatenate(([0], np.cumsum(b == 44)))
        per_row = np.diff(np.concatenate(([0], commas[ends])))
        # a row's count includes the "\n" separator position, which is never a comma
        bad = np.flatnonzero(per_row != len(self.other_columns) - 1)
        if bad.size == 0:
            return None
        row = int(bad[0])
        return (row, *self._count_problem(int(per_row[row]) + 2))

    def _parse_values(self, joined: bytes, n_rows: int, dtype):
        """The non-Image columns: float64 (NaN for empty) or int64; (DataFrame, problem)."""
        names = self.other_columns
        if n_rows == 0:
            return pd.DataFrame({c: np.empty(0, dtype) for c in names}), None
        read = dict(header=None, names=names, index_col=False, skip_blank_lines=False,
                    engine="c")
        try:
            frame = pd.read_csv(io.BytesIO(joined), dtype=np.float64, **read)
            if len(frame) == n_rows:
                array = frame.to_numpy()
                finite = np.isfinite(array) | np.isnan(array)
                ok = finite.all() and (dtype != np.int64 or
                                       (not np.isnan(array).any() and (array == np.round(array)).all()))
                if ok:
                    return frame.astype(dtype) if dtype == np.int64 else frame, None
        except (ValueError, pd.errors.ParserError):
            pass
        # Slow path, cell by cell (only for unusual or bad input): its verdict is final.
        frame = pd.read_csv(io.BytesIO(joined), dtype=str, keep_default_na=False, na_filter=False,
                            **read)
        cells = frame.to_numpy(dtype=object)
        convert = _int_or_none if dtype == np.int64 else _float_or_none
        want = "an integer" if dtype == np.int64 else "a number or nothing"
        numbers = np.vectorize(convert, otypes=[object])(cells)
        bad = np.vectorize(lambda v: v is None, otypes=[bool])(numbers)
        if bad.any():
            row = int(np.flatnonzero(bad.any(axis=1))[0])
            col = int(np.flatnonzero(bad[row])[0])
            return None, (row, names[col], f"expected {want}, got {_show(cells[row, col])}")
        return pd.DataFrame(numbers.astype(dtype), columns=names), None


_NA_TEXT = frozenset(("", "NA", "N/A", "n/a", "NaN", "nan", "-nan", "-NaN", "null", "NULL",
                      "None", "<NA>", "#N/A", "#NA"))


def _float_or_none(cell):
    text = str(cell).strip()
    if text in _NA_TEXT:
        return np.nan
    try:
        value = float(text)
    except ValueError:
        return None
    return value if np.isfinite(value) else None


def _int_or_none(cell):
    text = str(cell).strip()
    return int(text) if re.fullmatch(r"[+-]?\d{1,18}", text) else None


# --------------------------------------------------------------------------- pixels

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


def _parse_pixels(text: bytes, starts: np.ndarray, ends: np.ndarray):
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
    show = n >= _PROGRESS_ROWS or progress.forced()
    bar = progress.bar(total=n, desc="parsing images", unit="row", **({} if show else {"disable": True}))

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
            return f"pixel {k + 1} is {_show(t)}, expected an integer 0..255"
    if len(values) != N_PIXELS:
        return f"expected {N_PIXELS} pixel values, got {len(values)}"
    return None


# --------------------------------------------------------------------------- reading a file

def _load(folder_or_file, stem: str, parse):
    """(arrays, source path, fingerprint): the file's bytes, unpacked and parsed; the
    fingerprint is hashed alongside the parse, on another thread."""
    source = _resolve(folder_or_file, stem)
    raw = source.read_bytes()
    with ThreadPoolExecutor(1) as pool:
        hashing = pool.submit(_fingerprint, raw)
        name, text = _unpack(source, raw)
        del raw
        arrays = parse(text, name)
        fingerprint = hashing.result()
    return arrays, source, fingerprint


# --------------------------------------------------------------------------- public loaders

_TRAINING_DESCRIPTION = f"Kaggle's {N_TARGETS} keypoint columns ({FEATURE_NAMES[0]}, ...) and Image"
_TEST_DESCRIPTION = "ImageId and Image"


def _keypoint_problem(frame: pd.DataFrame):
    """(row, column, problem) of the first keypoint outside [0, IMAGE_SIDE], or None."""
    array = frame.to_numpy(dtype=np.float64)
    outside = (array < 0) | (array > IMAGE_SIDE)          # NaN (missing) compares False
    if not outside.any():
        return None
    row = int(np.flatnonzero(outside.any(axis=1))[0])
    col = int(np.flatnonzero(outside[row])[0])
    return (row, frame.columns[col], f"{array[row, col]:g} is outside [0, {IMAGE_SIDE}]; "
                                     f"expected a pixel coordinate or nothing")


def _parse_training(text: bytes, name: str) -> dict:
    table = _Table(text, name, FEATURE_NAMES, _TRAINING_DESCRIPTION)
    values, X = table.parse(np.float64, _keypoint_problem)
    y = values[list(FEATURE_NAMES)].to_numpy(dtype=np.float32)
    return {"X": X, "y": y}


def _parse_test(text: bytes, name: str) -> dict:
    table = _Table(text, name, ("ImageId",), _TEST_DESCRIPTION)
    values, X = table.parse(np.int64)
    image_ids = values["ImageId"].to_numpy(dtype=np.int64)
    duplicated = np.flatnonzero(pd.Series(image_ids).duplicated().to_numpy())
    if duplicated.size:
        row = int(duplicated[0])
        first = int(np.flatnonzero(image_ids == image_ids[row])[0])
        raise table.error(row, "ImageId", f"ImageId {image_ids[row]} appears again "
                                          f"(first on {table.where(first)})")
    return {"image_ids": image_ids, "X": X}


def load_training(folder_or_file) -> TrainingData:
    """Kaggle's training set from a folder (training.csv, .csv.gz, .zip) or a file: every
    row, unlabelled keypoints as NaN (which rows a net trains on is the net's own
    ``complete_only``).

    Raises DataError for bad content, FileNotFoundError when there is no file.
    """
    arrays, source, fingerprint = _load(folder_or_file, "training", _parse_training)
    return TrainingData(X=arrays["X"], y=arrays["y"], source=source, fingerprint=fingerprint)


def load_test(folder_or_file) -> TestData:
    """Kaggle's test set (test.csv: ImageId,Image) from a folder or a file."""
    arrays, source, fingerprint = _load(folder_or_file, "test", _parse_test)
    return TestData(image_ids=arrays["image_ids"], X=arrays["X"], source=source,
                    fingerprint=fingerprint)


def load_lookup(folder_or_file) -> pd.DataFrame:
    """IdLookupTable.csv as a DataFrame: RowId (int64), ImageId (int64), FeatureName (str).

    Accepts CRLF line ends and rows without the (empty) Location field, as in Kaggle's file.
    Every FeatureName must be one of the 30 keypoint columns and every RowId unique; a
    DataError names the file, the line and the column otherwise.
    """
    source = _resolve(folder_or_file, "IdLookupTable")
    name, text = _unpack(source, source.read_bytes())
    if text.startswith(b"\xef\xbb\xbf"):
        text = text[3:]
    header = "RowId,ImageId,FeatureName,Location"
    if not text or text.isspace():
        raise DataError(f"{name}: line 1: the file is empty; expected the header {header}")
    try:
        frame = pd.read_csv(io.BytesIO(text), dtype=str, keep_default_na=False, na_filter=False,
                            skip_blank_lines=False, index_col=False, engine="c")
    except pd.errors.ParserError as e:
        found = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(e))
        if found is None:
            raise DataError(f"{name}: cannot parse: {' '.join(str(e).split())}") from None
        expected, line, saw = (int(g) for g in found.groups())
        raise DataError(f"{name}: line {line}, column #{expected + 1}: unexpected; the row has "
                        f"{saw} fields, the header {expected}") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    for column in _LOOKUP_COLUMNS:
        if column not in frame.columns:
            raise DataError(f"{name}: line 1 (header), column {column}: missing; "
                            f"expected the header {header}")
    cells = frame[list(_LOOKUP_COLUMNS)].fillna("").astype(str)
    lines = np.arange(len(frame)) + 2
    blank = (frame.fillna("").astype(str).apply(lambda s: s.str.strip()) == "").all(axis=1)
    if blank.any():                      # blank lines, e.g. at the end
        cells, lines = cells[~blank.to_numpy()], lines[~blank.to_numpy()]
    if len(cells) == 0:
        raise DataError(f"{name}: no data rows after the header (line 1)")
    stripped = {c: cells[c].str.strip() for c in _LOOKUP_COLUMNS}
    checks = (("RowId", stripped["RowId"].str.fullmatch(r"\d+"), "a positive integer"),
              ("ImageId", stripped["ImageId"].str.fullmatch(r"\d+"), "a positive integer"),
              ("FeatureName", stripped["FeatureName"].isin(FEATURE_NAMES),
               "one of Kaggle's 30 keypoint column names"))
    problems = []
    for column, ok, want in checks:
        bad = np.flatnonzero(~ok.to_numpy(dtype=bool))
        if bad.size:
            problems.append((bad[0], column, want))
    if problems:
        i, column, want = min(problems, key=lambda p: p[0])
        raise DataError(f"{name}: line {lines[i]}, column {column}: expected {want}, "
                        f"got {_show(cells[column].iat[i])}")
    row_ids = stripped["RowId"].astype(np.int64).to_numpy()
    duplicated = np.flatnonzero(pd.Series(row_ids).duplicated().to_numpy())
    if duplicated.size:
        i = int(duplicated[0])
        first = int(np.flatnonzero(row_ids == row_ids[i])[0])
        raise DataError(f"{name}: line {lines[i]}, column RowId: RowId {row_ids[i]} appears "
                        f"again (first on line {lines[first]})")
    return pd.DataFrame({"RowId": row_ids,
                         "ImageId": stripped["ImageId"].astype(np.int64).to_numpy(),
                         "FeatureName": stripped["FeatureName"].to_numpy(dtype=object)})
