"""Kaggle's IdLookupTable.csv -> DataFrame (RowId, ImageId, FeatureName), one-line errors."""
from __future__ import annotations

import io
import re

import numpy as np
import pandas as pd

from ..keypoints import FEATURE_NAMES
from ._errors import DataError, show
from ._files import locate, unpack

_LOOKUP_COLUMNS = ("RowId", "ImageId", "FeatureName")


def load_lookup(folder_or_file) -> pd.DataFrame:
    """IdLookupTable.csv as a DataFrame: RowId (int64), ImageId (int64), FeatureName (str).

    Accepts CRLF line ends and rows without the (empty) Location field, as in Kaggle's file.
    Every FeatureName must be one of the 30 keypoint columns and every RowId unique; a
    DataError names the file, the line and the column otherwise.
    """
    source = locate(folder_or_file, "IdLookupTable")
    name, text = unpack(source, source.read_bytes())
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
                        f"got {show(cells[column].iat[i])}")
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
