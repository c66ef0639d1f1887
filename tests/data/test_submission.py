import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from kfkd_kit.keypoints import FEATURE_NAMES
from kfkd_kit.data.submission import (SubmissionError, build_submission, validate_submission,
                                      write_submission)


@pytest.fixture
def lookup():
    rows = [(1, 7, "left_eye_center_x"), (2, 7, "nose_tip_y"), (3, 9, "mouth_center_bottom_lip_y")]
    return pd.DataFrame(rows, columns=["RowId", "ImageId", "FeatureName"])


def test_build_maps_lookup_rows_to_predictions_and_clips(lookup):
    predictions = np.full((2, 30), 50.0)
    predictions[0, FEATURE_NAMES.index("left_eye_center_x")] = 66.5
    predictions[0, FEATURE_NAMES.index("nose_tip_y")] = -3.0
    predictions[1, FEATURE_NAMES.index("mouth_center_bottom_lip_y")] = 101.0
    table = build_submission(predictions, image_ids=[7, 9], lookup=lookup)
    assert table["RowId"].tolist() == [1, 2, 3]
    assert table["Location"].tolist() == [66.5, 0.0, 96.0]


def test_build_rejects_an_image_missing_from_test(lookup):
    with pytest.raises(SubmissionError, match=r"row 3, column ImageId: image 9"):
        build_submission(np.zeros((1, 30)), image_ids=[7], lookup=lookup)


@pytest.mark.parametrize("change, message", [
    (lambda t: t.iloc[:2], "2 rows, IdLookupTable has 3"),
    (lambda t: t.assign(RowId=[1, 3, 2]), "row 2, column RowId: 3, expected 2"),
    (lambda t: t.assign(Location=[1.0, np.nan, 2.0]), "row 2, column Location"),
    (lambda t: t.assign(Location=[1.0, 2.0, 96.5]), "row 3, column Location"),
    (lambda t: t.assign(Location=[-0.1, 2.0, 3.0]), "row 1, column Location"),
    (lambda t: t.rename(columns={"Location": "Value"}), "columns must be RowId,Location"),
])
def test_validator_rejects_bad_tables(lookup, change, message):
    good = pd.DataFrame({"RowId": [1, 2, 3], "Location": [1.0, 2.0, 3.0]})
    validate_submission(good, lookup)
    with pytest.raises(SubmissionError, match=message):
        validate_submission(change(good), lookup)


def test_write_leaves_no_file_when_invalid(lookup, tmp_path):
    path = tmp_path / "sub.csv"
    bad = pd.DataFrame({"RowId": [1, 2, 3], "Location": [1.0, np.nan, 3.0]})
    with pytest.raises(SubmissionError):
        write_submission(bad, lookup, path)
    assert list(tmp_path.iterdir()) == []
    good = bad.fillna(2.0)
    write_submission(good, lookup, path)
    assert path.read_text().splitlines() == ["RowId,Location", "1,1.000000", "2,2.000000", "3,3.000000"]


# --------------------------------------------------------------------------- unique names

def test_two_submissions_in_the_same_second_never_overwrite_each_other(lookup, tmp_path):
    from datetime import datetime, timezone

    from kfkd_kit.data.submission import submission_path
    now = datetime(2026, 11, 29, 4, 15, 0, tzinfo=timezone.utc)
    tables = [pd.DataFrame({"RowId": [1, 2, 3], "Location": [float(k)] * 3}) for k in (1, 2, 3)]
    paths = [write_submission(t, lookup, submission_path(tmp_path, "net1", now), exclusive=True)
             for t in tables]
    assert [p.name for p in paths] == ["net1-20261129T041500Z.csv", "net1-20261129T041500Z-2.csv",
                                       "net1-20261129T041500Z-3.csv"]
    for path, table in zip(paths, tables):
        pd.testing.assert_frame_equal(pd.read_csv(path), table)
    # a name chosen before the other was written (two processes at once) is not reused
    taken = tmp_path / "net1-20261129T041500Z.csv"
    again = write_submission(tables[0], lookup, taken, exclusive=True)
    assert again.name == "net1-20261129T041500Z-4.csv"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*(p.name for p in paths), again.name])


def test_exclusive_write_when_the_file_system_has_no_hard_links(lookup, tmp_path, monkeypatch):
    import os
    monkeypatch.setattr(os, "link", lambda *a: (_ for _ in ()).throw(PermissionError("no links")))
    table = pd.DataFrame({"RowId": [1, 2, 3], "Location": [1.0, 2.0, 3.0]})
    first = write_submission(table, lookup, tmp_path / "s.csv", exclusive=True)
    second = write_submission(table, lookup, tmp_path / "s.csv", exclusive=True)
    assert (first.name, second.name) == ("s.csv", "s-2.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s-2.csv", "s.csv"]


# --------------------------------------------------------------------------- properties

@st.composite
def predictions_and_lookup(draw):
    """Predictions for some test images (any floats, some far outside the image) and a
    lookup asking for any subset of their values, in any order, with unique RowIds."""
    n = draw(st.integers(1, 5))
    image_ids = draw(st.lists(st.integers(1, 10_000), min_size=n, max_size=n, unique=True))
    values = draw(st.lists(st.floats(-200, 300, allow_nan=False), min_size=n * 30,
                           max_size=n * 30))
    cells = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, 29)), min_size=1,
                          max_size=40, unique=True))
    row_ids = draw(st.lists(st.integers(1, 10**6), min_size=len(cells), max_size=len(cells),
                            unique=True))
    lookup = pd.DataFrame({"RowId": row_ids, "ImageId": [image_ids[i] for i, _ in cells],
                           "FeatureName": [FEATURE_NAMES[j] for _, j in cells]})
    return np.array(values).reshape(n, 30), image_ids, lookup


@settings(max_examples=40, deadline=None, database=None)
@given(case=predictions_and_lookup())
def test_any_predictions_and_lookup_give_exactly_the_lookup_rows(case, tmp_path_factory):
    predictions, image_ids, lookup = case
    table = build_submission(predictions, image_ids, lookup)
    path = write_submission(table, lookup, tmp_path_factory.mktemp("sub") / "s.csv")
    back = pd.read_csv(path)
    assert list(back.columns) == ["RowId", "Location"]
    assert back["RowId"].tolist() == lookup["RowId"].tolist()
    assert back["Location"].between(0, 96).all()
    np.testing.assert_allclose(back["Location"], table["Location"], rtol=0, atol=1e-6)
    position = {image: k for k, image in enumerate(image_ids)}
    wanted = [np.clip(predictions[position[i], FEATURE_NAMES.index(f)], 0, 96)
              for i, f in zip(lookup["ImageId"], lookup["FeatureName"])]
    np.testing.assert_allclose(back["Location"], wanted, rtol=0, atol=1e-6)
