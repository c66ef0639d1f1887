"""kfkd_kit.data: Kaggle's files (plain, zip, gz) -> arrays, validation messages.

Every file here is written by the helpers below into tmp_path; no test reads real data.
"""
import gzip
import os
import re
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from kfkd_kit import data
from kfkd_kit.data import _pixels
from kfkd_kit.data import (DataError, find_file, has_kaggle_data, load_lookup, load_test,
                           load_training)
from kfkd_kit.keypoints import COMMON_KEYPOINTS, FEATURE_INDEX, FEATURE_NAMES, N_PIXELS

COMMON_COLUMNS = [FEATURE_INDEX[f"{k}_{a}"] for k in COMMON_KEYPOINTS for a in "xy"]


# --------------------------------------------------------------------------- writers

def make_training(n=12, seed=0):
    """Random images and keypoints (4 decimals, so text -> float32 is exact to compare);
    every third row has only the 8 common labels, row 1 none at all."""
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 256, (n, N_PIXELS), dtype=np.uint8)
    X[0, :6] = [0, 255, 9, 10, 99, 100]
    y = np.round(rng.uniform(0.5, 95.5, (n, 30)), 4)
    sparse = np.ones(30, bool)
    sparse[COMMON_COLUMNS] = False
    y[::3, sparse] = np.nan
    if n > 1:
        y[1] = np.nan
    return X, y


def training_lines(X, y, columns=FEATURE_NAMES):
    lines = [",".join(columns) + ",Image"]
    for xi, yi in zip(X, y):
        cells = ["" if np.isnan(v) else f"{v:.4f}" for v in yi]
        lines.append(",".join(cells) + "," + " ".join(map(str, xi.tolist())))
    return lines


def write(path, lines, crlf=False, member=None):
    """Write text lines as path's suffix says: .csv, .csv.gz, .zip (member inside)."""
    text = (("\r\n" if crlf else "\n").join(lines) + ("\r\n" if crlf else "\n")).encode()
    path = os.fspath(path)
    if path.endswith(".gz"):
        with open(path, "wb") as f:
            f.write(gzip.compress(text))
    elif path.endswith(".zip"):
        name = member or os.path.basename(path)[:-4].removesuffix(".csv") + ".csv"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr(name, text)
    else:
        with open(path, "wb") as f:
            f.write(text)
    return path


def test_lines(X, ids):
    return ["ImageId,Image"] + [f"{i}," + " ".join(map(str, x.tolist())) for i, x in zip(ids, X)]


test_lines.__test__ = False


def expected_y(y):
    return y.astype(np.float32)


@pytest.fixture
def small_chunks(monkeypatch):
    """A few rows per chunk so that small files take the multi-chunk, two-thread path."""
    monkeypatch.setattr(_pixels, "_CHUNK_BYTES", 3 * 35_000)
    monkeypatch.setattr(_pixels, "_THREADS", 2)


# --------------------------------------------------------------------------- parsing

@pytest.mark.parametrize("name", ["training.csv", "training.csv.gz", "training.zip", "training.csv.zip"])
def test_every_container_parses_to_the_same_arrays(tmp_path, name, small_chunks):
    X, y = make_training(10)
    folder = tmp_path / "data"
    folder.mkdir()
    write(folder / name, training_lines(X, y))
    assert find_file(folder, "training") == folder / name
    assert has_kaggle_data(folder)
    got = load_training(folder)
    assert got.X.dtype == np.uint8 and got.X.shape == (10, N_PIXELS)
    assert got.y.dtype == np.float32 and got.y.shape == (10, 30)
    np.testing.assert_array_equal(got.X, X)
    np.testing.assert_array_equal(got.y, expected_y(y))        # NaN where NaN
    assert got.source == (folder / name).resolve()
    assert len(got.fingerprint) == 16


def test_zip_with_another_member_name(tmp_path):
    X, y = make_training(2)
    path = write(tmp_path / "training.zip", training_lines(X, y), member="kaggle/train.csv")
    np.testing.assert_array_equal(load_training(path).X, X)


def test_every_row_is_loaded_with_nan_for_missing_keypoints(tmp_path):
    X, y = make_training(12)
    write(tmp_path / "training.csv", training_lines(X, y))
    every = load_training(tmp_path)
    assert 0 < (~np.isnan(y).any(axis=1)).sum() < 12
    assert len(every) == 12
    assert np.isnan(every.y[0]).sum() == 22 and np.isnan(every.y[1]).all()
    np.testing.assert_array_equal(every.X, X)


def test_one_thread_and_two_threads_agree(tmp_path, monkeypatch):
    X, y = make_training(9, seed=3)
    write(tmp_path / "training.csv", training_lines(X, y))
    monkeypatch.setattr(_pixels, "_CHUNK_BYTES", 40_000)
    results = []
    for threads in (1, 2):
        monkeypatch.setattr(_pixels, "_THREADS", threads)
        results.append(load_training(tmp_path).X)
    np.testing.assert_array_equal(results[0], X)
    np.testing.assert_array_equal(results[1], X)


def test_crlf_quotes_spacing_leading_zeros_and_column_order(tmp_path):
    X, y = make_training(3, seed=1)
    columns = list(FEATURE_NAMES[::-1])              # another column order
    lines = [",".join(["Image"] + columns)]
    for i, (xi, yi) in enumerate(zip(X, y)):
        words = [f"{v:03d}" if i == 0 else str(v) for v in xi.tolist()]   # "007"
        sep = "  " if i == 1 else " "
        image = sep.join(words)
        if i == 2:
            image = f'" {image} "'
        cells = ["" if np.isnan(v) else f"{v:.4f}" for v in yi[::-1]]
        lines.append(",".join([image] + cells))
    lines.insert(2, "")                              # a blank line is skipped
    write(tmp_path / "training.csv", lines, crlf=True)
    got = load_training(tmp_path)
    np.testing.assert_array_equal(got.X, X)
    np.testing.assert_array_equal(got.y, expected_y(y))


@settings(max_examples=25, deadline=None, database=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_pixel_parser_matches_values_in_any_spacing(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 4))
    X = rng.integers(0, 256, (n, N_PIXELS), dtype=np.uint8)
    fields = []
    for row in X:
        words = np.array([str(v) for v in row.tolist()], dtype=object)
        pad = rng.random(N_PIXELS) < 0.1             # some leading zeros, never past 3 digits
        words[pad] = [w.zfill(3) for w in words[pad]]
        seps = np.where(rng.random(N_PIXELS) < 0.05, "   ", " ")
        fields.append("".join(w + s for w, s in zip(words, seps)).strip().encode())
    text = b"X," + b"\nX,".join(fields)
    starts, pos = [], 0
    for f in fields:
        starts.append(pos + 2)
        pos += 2 + len(f) + 1
    starts = np.array(starts)
    ends = starts + np.array([len(f) for f in fields])
    got, problem = _pixels.parse_pixels(text, starts, ends)
    assert problem is None
    np.testing.assert_array_equal(got, X)


@settings(max_examples=25, deadline=None, database=None)
@given(seed=st.integers(0, 2**32 - 1), junk=st.sampled_from([b".", b"-", b"x", b"\t", b"\r", b"+"]))
def test_pixel_parser_rejects_any_foreign_byte(seed, junk):
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 256, (2, N_PIXELS), dtype=np.uint8)
    fields = [bytearray(" ".join(map(str, row.tolist())).encode()) for row in X]
    row = int(rng.integers(0, 2))
    at = int(rng.integers(0, len(fields[row])))
    fields[row][at:at + 1] = junk
    text = b"," + b"\n,".join(bytes(f) for f in fields)
    starts = np.array([1, 1 + len(fields[0]) + 2])
    ends = starts + np.array([len(f) for f in fields])
    got, problem = _pixels.parse_pixels(text, starts, ends)
    assert got is None
    assert problem[0] == row and problem[1] == "Image"


def test_test_csv(tmp_path, small_chunks):
    rng = np.random.default_rng(5)
    X = rng.integers(0, 256, (7, N_PIXELS), dtype=np.uint8)
    ids = [3, 1, 2, 10, 11, 12, 99]
    write(tmp_path / "test.csv.gz", test_lines(X, ids))
    got = load_test(tmp_path)
    assert isinstance(got, data.TestData)
    assert got.image_ids.dtype == np.int64
    assert got.image_ids.tolist() == ids
    np.testing.assert_array_equal(got.X, X)


def test_byte_order_mark_and_file_paths(tmp_path):
    X = np.full((2, N_PIXELS), 200, np.uint8)
    path = tmp_path / "my-test-images.csv"
    path.write_bytes(b"\xef\xbb\xbf" + "\n".join(test_lines(X, [5, 6])).encode())
    got = load_test(path)
    assert got.source == path.resolve() and got.image_ids.tolist() == [5, 6]
    np.testing.assert_array_equal(got.X, X)


LOOKUP_ROWS = [(1, 1, "left_eye_center_x"), (2, 1, "left_eye_center_y"), (3, 2, "nose_tip_x"),
               (4, 2, "mouth_center_bottom_lip_y"), (5, 3, "right_eyebrow_outer_end_x")]


def lookup_lines(rows=LOOKUP_ROWS, three_fields=()):
    lines = ["RowId,ImageId,FeatureName,Location"]
    for i, (r, im, f) in enumerate(rows):
        lines.append(f"{r},{im},{f}" if i in three_fields else f"{r},{im},{f},")
    return lines


@pytest.mark.parametrize("crlf", [False, True])
def test_lookup_crlf_and_three_field_rows(tmp_path, crlf):
    lines = lookup_lines(three_fields={0, 2, 3}) + [""]      # and a trailing blank line
    write(tmp_path / "IdLookupTable.csv", lines, crlf=crlf)
    got = load_lookup(tmp_path)
    assert list(got.columns) == ["RowId", "ImageId", "FeatureName"]
    assert got["RowId"].dtype == np.int64 and got["ImageId"].dtype == np.int64
    assert got["RowId"].tolist() == [r for r, _, _ in LOOKUP_ROWS]
    assert got["ImageId"].tolist() == [im for _, im, _ in LOOKUP_ROWS]
    assert got["FeatureName"].tolist() == [f for _, _, f in LOOKUP_ROWS]


def test_lookup_zipped(tmp_path):
    write(tmp_path / "IdLookupTable.zip", lookup_lines())
    assert load_lookup(tmp_path / "IdLookupTable.zip")["RowId"].tolist() == [1, 2, 3, 4, 5]


def test_find_file(tmp_path):
    assert find_file(tmp_path, "training") is None
    assert not has_kaggle_data(tmp_path)
    assert not has_kaggle_data(tmp_path / "missing")
    (tmp_path / "Test.CSV").write_text("ImageId,Image\n")
    assert find_file(tmp_path, "test") == tmp_path / "Test.CSV"
    (tmp_path / "training.zip").write_bytes(b"")
    (tmp_path / "training.csv.gz").write_bytes(b"")
    assert find_file(tmp_path, "training") == tmp_path / "training.csv.gz"
    with pytest.raises(FileNotFoundError, match="IdLookupTable"):
        load_lookup(tmp_path)


# --------------------------------------------------------------------------- errors

def error_of(call):
    with pytest.raises(DataError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message, message
    return message


def bad_training(tmp_path, edit, n=6):
    """A training.csv whose lines (0 = header) went through ``edit``."""
    X, y = make_training(n, seed=2)
    lines = training_lines(X, y)
    edit(lines)
    write(tmp_path / "training.csv", lines)
    return lambda: load_training(tmp_path)


def replace_pixel(lines, line, index, text):
    head, image = lines[line].rsplit(",", 1)
    words = image.split(" ")
    words[index] = text
    lines[line] = head + "," + " ".join(words)


def drop_pixel(lines, line):
    head, image = lines[line].rsplit(",", 1)
    lines[line] = head + "," + image.rsplit(" ", 1)[0]


def set_cell(lines, line, column, text):
    cells = lines[line].split(",")
    cells[FEATURE_INDEX[column]] = text
    lines[line] = ",".join(cells)


def set_line(index, text):
    def edit(lines):
        lines[index] = text(lines[index]) if callable(text) else text
    return edit


BAD_TRAINING = [
    (lambda ls: drop_pixel(ls, 3),
     ["row 3 (line 4)", "column Image", "expected 9216 pixel values, got 9215"]),
    (lambda ls: replace_pixel(ls, 2, 40, "256"), ["row 2 (line 3)", "column Image", "pixel 41", "'256'"]),
    (lambda ls: replace_pixel(ls, 5, 0, "12.5"), ["row 5", "column Image", "pixel 1", "'12.5'"]),
    (lambda ls: replace_pixel(ls, 1, 9215, "-1"), ["row 1", "column Image", "pixel 9216", "'-1'"]),
    (lambda ls: replace_pixel(ls, 4, 7, "0012"), ["row 4", "column Image", "pixel 8", "'0012'"]),
    (lambda ls: replace_pixel(ls, 4, 7, "x"), ["row 4", "column Image", "'x'"]),
    (lambda ls: set_cell(ls, 4, "nose_tip_y", "abc"), ["row 4 (line 5)", "column nose_tip_y", "'abc'"]),
    (lambda ls: set_cell(ls, 2, "left_eye_center_x", "inf"), ["row 2", "column left_eye_center_x"]),
    (set_line(3, lambda line: line.split(",", 1)[1]), ["row 3", "column", "30 fields"]),
    (set_line(2, lambda line: line + ",5"), ["row 2", "column", "32 fields"]),
    (set_line(2, "1.0,2.0"), ["row 2", "column", "2 fields"]),
    (set_line(0, lambda h: h.replace("nose_tip_x,", "")), ["line 1 (header)", "column nose_tip_x", "missing"]),
    (set_line(0, lambda h: h.replace("nose_tip_x", "nose_tip_X")), ["line 1 (header)", "'nose_tip_X'"]),
    (set_line(0, lambda h: h.replace(",Image", ",image")), ["line 1 (header)", "'image'"]),
    (set_line(0, lambda h: h + ",nose_tip_x"), ["line 1 (header)", "column nose_tip_x", "twice"]),
    (set_line(0, "ImageId,Image"), ["line 1 (header)", "'ImageId'"]),
]


@pytest.mark.parametrize("edit, expected", BAD_TRAINING)
def test_bad_training_rows_name_file_row_and_column(tmp_path, edit, expected):
    message = error_of(bad_training(tmp_path, edit))
    assert message.startswith("training.csv: "), message
    for part in expected:
        assert part in message, (part, message)


def test_the_first_bad_row_is_reported(tmp_path, small_chunks):
    def edit(lines):
        set_cell(lines, 9, "nose_tip_y", "oops")          # row 9: keypoint
        drop_pixel(lines, 7)                              # row 7: pixel count, a later chunk
        replace_pixel(lines, 5, 3, "300")                 # row 5: pixel value
    assert "row 5 (line 6), column Image: pixel 4 is '300'" in error_of(bad_training(tmp_path, edit, n=12))

    def edit2(lines):
        replace_pixel(lines, 8, 3, "300")
        set_cell(lines, 6, "mouth_left_corner_x", "oops")
    assert "row 6 (line 7), column mouth_left_corner_x:" in error_of(bad_training(tmp_path, edit2, n=12))


def test_empty_and_header_only_files(tmp_path):
    (tmp_path / "training.csv").write_bytes(b"")
    assert "training.csv: line 1: the file is empty" in error_of(lambda: load_training(tmp_path))
    (tmp_path / "training.csv").write_bytes(b"\r\n\n")
    assert "empty" in error_of(lambda: load_training(tmp_path))
    (tmp_path / "training.csv").write_text(training_lines([], [])[0] + "\n")
    assert "training.csv: no data rows" in error_of(lambda: load_training(tmp_path))


def test_broken_containers(tmp_path):
    (tmp_path / "training.csv.gz").write_bytes(b"not gzip at all")
    assert error_of(lambda: load_training(tmp_path)).startswith("training.csv.gz: ")
    (tmp_path / "training.csv.gz").unlink()
    (tmp_path / "training.zip").write_bytes(b"PK not a zip")
    assert error_of(lambda: load_training(tmp_path)).startswith("training.zip: ")


def test_zip_member_in_messages(tmp_path):
    X, y = make_training(3)
    lines = training_lines(X, y)
    drop_pixel(lines, 2)
    write(tmp_path / "training.zip", lines)
    assert error_of(lambda: load_training(tmp_path)).startswith(
        "training.csv in training.zip: row 2 (line 3), column Image:")


@pytest.mark.parametrize("ids, expected", [
    (["1", "x2", "3"], "test.csv: row 2 (line 3), column ImageId: expected an integer, got 'x2'"),
    (["1", "", "3"], "test.csv: row 2 (line 3), column ImageId: expected an integer, got ''"),
    (["4", "5", "4"], "test.csv: row 3 (line 4), column ImageId: ImageId 4 appears again "
                      "(first on row 1 (line 2))"),
])
def test_bad_test_csv(tmp_path, ids, expected):
    X = np.zeros((3, N_PIXELS), np.uint8)
    write(tmp_path / "test.csv", test_lines(X, ids))
    assert expected in error_of(lambda: load_test(tmp_path))


@pytest.mark.parametrize("edit, expected", [
    (set_line(4, "4,2,nose_tip_z,"), "line 5, column FeatureName: expected one of"),
    (set_line(3, "3,two,nose_tip_x,"), "line 4, column ImageId: expected a positive integer, got 'two'"),
    (set_line(2, "1,1,left_eye_center_y,"), "line 3, column RowId: RowId 1 appears again (first on line 2)"),
    (set_line(2, "2,1,left_eye_center_y,,9"), "line 3, column #5: unexpected"),
    (set_line(0, "RowId,Image,FeatureName,Location"), "line 1 (header), column ImageId: missing"),
])
def test_bad_lookup(tmp_path, edit, expected):
    lines = lookup_lines(three_fields={1})
    edit(lines)
    write(tmp_path / "IdLookupTable.csv", lines, crlf=True)
    message = error_of(lambda: load_lookup(tmp_path))
    assert message.startswith("IdLookupTable.csv: ") and expected in message, message


# --------------------------------------------------------------------------- properties of the parser

@st.composite
def kaggle_rows(draw):
    """1-4 rows: any uint8 images (from a drawn seed, with the extremes), and keypoints that
    are any float32 in [0, 96] or missing."""
    n = draw(st.integers(1, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    X = rng.integers(0, 256, (n, N_PIXELS), dtype=np.uint8)
    X[:, :2] = [0, 255]
    keypoint = st.one_of(st.just(np.nan),
                         st.floats(0, 96, width=32, allow_subnormal=False),
                         st.sampled_from([0.0, 96.0]))
    y = np.array(draw(st.lists(keypoint, min_size=30 * n, max_size=30 * n)),
                 dtype=np.float64).reshape(n, 30)
    return X, y


@settings(max_examples=30, deadline=None, database=None)
@given(rows=kaggle_rows(), crlf=st.booleans())
def test_any_images_and_keypoints_in_kaggle_format_parse_back(rows, crlf, tmp_path_factory):
    X, y = rows
    lines = [",".join(FEATURE_NAMES) + ",Image"]
    for xi, yi in zip(X, y):
        cells = ["" if np.isnan(v) else repr(float(v)) for v in yi]
        lines.append(",".join(cells) + "," + " ".join(map(str, xi.tolist())))
    folder = tmp_path_factory.mktemp("prop")
    write(folder / "training.csv", lines, crlf=crlf)
    got = load_training(folder)
    np.testing.assert_array_equal(got.X, X)
    np.testing.assert_array_equal(got.y, y.astype(np.float32))     # NaN where NaN


def _valid_pixel(text):
    return re.fullmatch(r" *\d{1,3} *", text) is not None and int(text) <= 255


@settings(max_examples=50, deadline=None, database=None)
@given(junk=st.text(max_size=8).filter(lambda t: not _valid_pixel(t)),
       row=st.integers(0, 2), pixel=st.integers(0, N_PIXELS - 1))
def test_junk_in_a_pixel_field_is_a_data_error_naming_row_and_column(junk, row, pixel,
                                                                      tmp_path_factory):
    X, y = make_training(3)
    lines = training_lines(X, y)
    head, image = lines[row + 1].rsplit(",", 1)
    words = image.split(" ")
    words[pixel] = junk
    lines[row + 1] = head + "," + " ".join(words)
    folder = tmp_path_factory.mktemp("junk")
    write(folder / "training.csv", lines)
    with pytest.raises(DataError) as error:
        load_training(folder)
    message = str(error.value)
    assert "\n" not in message
    assert re.match(r"training\.csv: row [1-4] \(line [2-9]\d*\), column \S+: ", message), message
