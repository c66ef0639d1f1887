"""Synthetic faces (synthetic.py) written in Kaggle's exact file layout: training.csv,
test.csv, IdLookupTable.csv, SampleSubmission.csv and the test images' true keypoints,
so every command runs on a fresh clone without Kaggle's data."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..utils.atomic import atomic_write
from ..keypoints import (COMMON_KEYPOINTS, DEFAULT_PIXEL_ORIGIN, FEATURE_NAMES, N_TARGETS, columns_of,
                         image_axis)
from .synthetic import make_faces

__all__ = ["write_kaggle_dataset"]


def _token_table() -> np.ndarray:
    """uint32 whose 4 bytes are the decimal text of 0..255 and a space, NUL-padded in front."""
    table = np.zeros((256, 4), dtype=np.uint8)
    for value in range(256):
        token = f"{value} ".encode()
        table[value, 4 - len(token):] = np.frombuffer(token, dtype=np.uint8)
    return table.view(np.uint32).ravel()


_TOKENS = _token_table()


def _image_text(images: np.ndarray) -> list[bytes]:
    """Each uint8 row as b'v v v ...' (decimal, single spaces), with no Python loop over
    pixels: gather 4-byte tokens, then delete the NUL padding with bytes.translate."""
    images = np.asarray(images, dtype=np.uint8)
    rows = []
    for start in range(0, len(images), 64):
        for tokens in _TOKENS[images[start:start + 64]]:
            rows.append(tokens.tobytes().translate(None, b"\0")[:-1])
    return rows


def _number_text(values: np.ndarray) -> np.ndarray:
    """Floats -> '%.6f' text, '' for NaN; same shape, object dtype."""
    values = np.asarray(values, dtype=np.float64)
    text = np.char.mod("%.6f", np.nan_to_num(values)).astype(object)
    text[np.isnan(values)] = ""
    return text


def _atomic_write_bytes(path: Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` atomically and durably (fsync'd)."""
    with atomic_write(path, "wb", fsync=True) as fh:
        fh.write(payload)


def _lines(rows, newline=b"\n") -> bytes:
    return b"".join(row + newline for row in rows)


# Kaggle's sizes: 7049 training rows (about 2100 complete) and 1783 test images. With
# fewer complete rows net1 barely beats predicting the mean, as on the real data.
KAGGLE_TRAIN_ROWS = 7049
KAGGLE_TEST_ROWS = 1783


def write_kaggle_dataset(folder, n_train: int = KAGGLE_TRAIN_ROWS, n_test: int = KAGGLE_TEST_ROWS,
                         seed: int = 0,
                         missing_fraction: float = 0.7, flip_axis: float | None = None,
                         pixel_origin: float = DEFAULT_PIXEL_ORIGIN) -> dict:
    """Write synthetic faces into ``folder`` (created) in Kaggle's exact file layout.

    Files (each written atomically: temporary file in ``folder``, then ``os.replace``):

    * ``training.csv`` -- the 30 ``FEATURE_NAMES`` then ``Image``; keypoints as ``%.6f``
      text, an empty field where missing; ``Image`` is 9216 space-separated ints 0..255.
      ``round(missing_fraction * n_train)`` rows, chosen at random, keep only the 8 columns
      of ``COMMON_KEYPOINTS``; the other rows are complete.
    * ``test.csv`` -- ``ImageId,Image`` with ImageId 1..n_test.
    * ``IdLookupTable.csv`` -- ``RowId,ImageId,FeatureName,Location`` with CRLF line endings
      and Location empty, as Kaggle's: about 2/3 of the test images (``n_test -
      round(n_test / 3)``, chosen at random) ask for the 8 common-keypoint values, the rest
      for all 30, in ``FEATURE_NAMES`` order; RowId 1, 2, ... consecutive.
    * ``SampleSubmission.csv`` -- ``RowId,Location`` with Location 0 for every RowId.
    * ``test_keypoints.csv`` -- not part of Kaggle's data: the hidden true test keypoints
      (``ImageId`` then the 30 ``FEATURE_NAMES``, all present) for scoring predictions on
      synthetic data.

    Training faces are ``make_faces(n_train + n_test, seed, pixel_origin)[:n_train]`` and
    test faces the rest: labels (test keypoints too) in the declared pixel convention
    (keypoints.py; default 0.5, continuous coordinates).  Deterministic in ``seed``.
    ``flip_axis`` plants another labels' mirror axis: every x label is written ``flip_axis -
    keypoints.image_axis(pixel_origin)`` pixels to the right of the pixels it marks, as a
    labelling tool with another habit would (None: labels mark pixel centres, the axis is
    the image's, 48 for origin 0.5).  Returns ``{"training", "test", "lookup",
    "sample_submission", "test_keypoints"}`` -> ``Path``.
    """
    n_train, n_test = int(n_train), int(n_test)
    if n_train < 0 or n_test < 0:
        raise ValueError(f"n_train and n_test must be >= 0, got {n_train}, {n_test}")
    if not 0.0 <= missing_fraction <= 1.0:
        raise ValueError(f"missing_fraction must be in [0, 1], got {missing_fraction}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    images, points = make_faces(n_train + n_test, seed, pixel_origin)
    if flip_axis is not None:
        points = points.copy()
        points[:, 0::2] += np.float32(float(flip_axis) - image_axis(pixel_origin))
    choice_rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(3)[2])
    common = columns_of(COMMON_KEYPOINTS)

    # training.csv
    targets = points[:n_train].astype(np.float64)
    incomplete = choice_rng.permutation(n_train)[:int(round(missing_fraction * n_train))]
    drop = np.setdiff1d(np.arange(N_TARGETS), common)
    targets[np.ix_(incomplete, drop)] = np.nan
    numbers = _number_text(targets)
    pixels = _image_text(images[:n_train])
    train_rows = [(",".join(numbers[i]) + ",").encode() + pixels[i] for i in range(n_train)]
    header = (",".join(FEATURE_NAMES) + ",Image").encode()
    paths = {"training": folder / "training.csv", "test": folder / "test.csv",
             "lookup": folder / "IdLookupTable.csv",
             "sample_submission": folder / "SampleSubmission.csv",
             "test_keypoints": folder / "test_keypoints.csv"}
    _atomic_write_bytes(paths["training"], _lines([header] + train_rows))

    # test.csv
    test_pixels = _image_text(images[n_train:])
    test_rows = [f"{i + 1},".encode() + test_pixels[i] for i in range(n_test)]
    _atomic_write_bytes(paths["test"], _lines([b"ImageId,Image"] + test_rows))

    # IdLookupTable.csv and SampleSubmission.csv
    full = np.zeros(n_test, dtype=bool)
    full[choice_rng.permutation(n_test)[:int(round(n_test / 3))]] = True
    names = np.array(FEATURE_NAMES, dtype=object)
    lookup_rows, row_id = [], 0
    for image_id in range(1, n_test + 1):
        wanted = names if full[image_id - 1] else names[common]
        for name in wanted:
            row_id += 1
            lookup_rows.append(f"{row_id},{image_id},{name},".encode())
    _atomic_write_bytes(paths["lookup"],
                        _lines([b"RowId,ImageId,FeatureName,Location"] + lookup_rows, b"\r\n"))
    sample = [f"{i},0".encode() for i in range(1, row_id + 1)]
    _atomic_write_bytes(paths["sample_submission"], _lines([b"RowId,Location"] + sample))

    # test_keypoints.csv (hidden labels; not a Kaggle file)
    truth = _number_text(points[n_train:])
    truth_rows = [(f"{i + 1}," + ",".join(truth[i])).encode() for i in range(n_test)]
    _atomic_write_bytes(paths["test_keypoints"],
                        _lines([("ImageId," + ",".join(FEATURE_NAMES)).encode()] + truth_rows))
    return paths
