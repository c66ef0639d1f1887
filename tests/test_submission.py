import numpy as np
import pandas as pd
import pytest

from kfkd_kit.keypoints import FEATURE_NAMES
from kfkd_kit.submission import (SubmissionError, build_submission, validate_submission,
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
