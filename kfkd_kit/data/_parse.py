"""Kaggle's training and test CSVs -> arrays, with one-line errors naming file, row, column.

A ``_Table`` locates every data row and its Image field; the other columns go through
pandas' C parser (cell by cell only for unusual or bad input) and the Image fields through
``_pixels.parse_pixels``. "row N" is the N-th data row (blank lines are skipped), "line N"
the line number in the file.
"""
from __future__ import annotations

import io
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..keypoints import FEATURE_NAMES, IMAGE_SIDE, N_TARGETS
from ._errors import DataError, show
from ._files import fingerprint_of, locate, unpack
from ._pixels import parse_pixels


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
                raise DataError(f"{self.name}: line 1 (header), column {show(c)} (position {i + 1}): "
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
        X, pixel_problem = parse_pixels(self.text, self.img_start[:limit], self.img_end[:limit])
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
            return None, (row, names[col], f"expected {want}, got {show(cells[row, col])}")
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


# --------------------------------------------------------------------------- reading a file

def _load(folder_or_file, stem: str, parse):
    """(arrays, source path, fingerprint): the file's bytes, unpacked and parsed; the
    fingerprint is hashed alongside the parse, on another thread."""
    source = locate(folder_or_file, stem)
    raw = source.read_bytes()
    with ThreadPoolExecutor(1) as pool:
        hashing = pool.submit(fingerprint_of, raw)
        name, text = unpack(source, raw)
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
