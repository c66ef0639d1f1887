"""Kaggle submissions: predictions in pixels -> RowId,Location via IdLookupTable.csv."""
from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from ..utils.atomic import atomic_write, create_unique, utc_stamp
from ..keypoints import FEATURE_INDEX, IMAGE_SIDE


class SubmissionError(ValueError):
    """A submission table that Kaggle would reject, or one we cannot build."""


def build_submission(predictions, image_ids, lookup: pd.DataFrame) -> pd.DataFrame:
    """RowId,Location for every lookup row, from (n, 30) pixel predictions of ``image_ids``.

    Locations are clipped to [0, 96]. A lookup ImageId absent from the test images is an
    error (naming the lookup row), not a silently empty cell.
    """
    predictions = np.asarray(predictions, dtype=np.float64)
    image_ids = np.asarray(image_ids)
    position = pd.Series(np.arange(len(image_ids)), index=image_ids)
    rows = position.reindex(lookup["ImageId"].to_numpy()).to_numpy()
    missing = np.flatnonzero(np.isnan(rows))
    if missing.size:
        i = missing[0]
        raise SubmissionError(
            f"IdLookupTable.csv: row {i + 1}, column ImageId: image {lookup['ImageId'].iat[i]} "
            f"is not in test.csv ({missing.size} lookup rows affected)")
    columns = lookup["FeatureName"].map(FEATURE_INDEX).to_numpy()
    locations = predictions[rows.astype(np.int64), columns.astype(np.int64)]
    return pd.DataFrame({"RowId": lookup["RowId"].to_numpy(),
                         "Location": np.clip(locations, 0.0, float(IMAGE_SIDE))})


def requested_keypoints(image_ids, lookup: pd.DataFrame) -> list:
    """For each of ``image_ids``, the keypoint names (without _x/_y) the lookup asks of it,
    in Kaggle's order (empty for an image it asks nothing of): which labelling effort the
    image's hidden labels came from (4 keypoints or all 15)."""
    asked = {}
    for image_id, feature in zip(lookup["ImageId"].to_numpy(), lookup["FeatureName"].to_numpy()):
        asked.setdefault(image_id, set()).add(FEATURE_INDEX[feature] // 2)
    names = [f[:-2] for f in list(FEATURE_INDEX)[0::2]]
    return [[names[k] for k in sorted(asked.get(i, ()))] for i in image_ids]


def validate_submission(submission: pd.DataFrame, lookup: pd.DataFrame) -> None:
    """Raise SubmissionError unless the table has exactly the lookup's RowIds, in order,
    and every Location is a number in [0, 96]."""
    if list(submission.columns) != ["RowId", "Location"]:
        raise SubmissionError(f"submission: columns must be RowId,Location, got {list(submission.columns)}")
    expected = lookup["RowId"].to_numpy()
    got = submission["RowId"].to_numpy()
    if len(got) != len(expected):
        raise SubmissionError(f"submission: {len(got)} rows, IdLookupTable has {len(expected)}")
    wrong = np.flatnonzero(got != expected)
    if wrong.size:
        i = wrong[0]
        raise SubmissionError(f"submission: row {i + 1}, column RowId: {got[i]}, expected {expected[i]}")
    location = pd.to_numeric(submission["Location"], errors="coerce").to_numpy(dtype=float)
    bad = np.flatnonzero(~np.isfinite(location) | (location < 0) | (location > IMAGE_SIDE))
    if bad.size:
        i = bad[0]
        raise SubmissionError(
            f"submission: row {i + 1}, column Location: {submission['Location'].iat[i]!r} "
            f"is not a number in [0, {IMAGE_SIDE}]")


def submission_path(folder, model_name: str, now: datetime | None = None) -> Path:
    """``folder/<model>-<UTC stamp>.csv``: the name ``write_submission(..., exclusive=True)``
    starts from (it takes ``-2``, ``-3``, ... when that one is taken)."""
    return Path(folder) / f"{model_name}-{utc_stamp(now)}.csv"


def write_submission(submission: pd.DataFrame, lookup: pd.DataFrame, path,
                     exclusive: bool = False) -> Path:
    """Validate, then write atomically (no partial file is ever left at ``path``); returns
    the path written.

    ``exclusive=True`` never replaces an existing file: if ``path`` is taken (by another
    submission made in the same second, even by another process at the same moment), the
    table goes to the first free name ``<stem>-2.csv``, ``<stem>-3.csv``, ... instead.
    """
    validate_submission(submission, lookup)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = submission.to_csv(index=False, float_format="%.6f", lineterminator="\n")
    if not exclusive:
        with atomic_write(path, "w") as f:
            f.write(text)
        return path
    return create_unique(path, text)
