"""search/analysis.py used directly, without the CLI or a net: the tables by hand, and the
whole analysis of a ridge regression (no validation split of its own)."""
import numpy as np
import pytest
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline

from kfkd_kit.data import load_training
from kfkd_kit.data.splits import grouped_holdout
from kfkd_kit.data import write_kaggle_dataset
from kfkd_kit.net.metrics import masked_rmse_px
from kfkd_kit.net.pipeline import PixelScaler
from kfkd_kit.search import analysis


def test_the_tables_count_labelled_values_only():
    y_true = np.array([[10.0, 20.0] + [np.nan] * 28, [30.0] * 30])
    y_pred = np.array([[13.0, 24.0] + [0.0] * 28, [30.0] * 29 + [36.0]])
    np.testing.assert_allclose(analysis.per_face_rmse(y_true, y_pred),
                               [np.sqrt((9 + 16) / 2), np.sqrt(36 / 30)])
    table = analysis.keypoint_table(y_true, y_pred)
    assert [r["keypoint"] for r in table][-1] == "all" and len(table) == 16
    assert table[0]["rmse_x_px"] == pytest.approx(np.sqrt(9 / 2))
    assert table[0]["labelled_values"] == 4 and table[-1]["labelled_values"] == 32
    assert table[-1]["rmse_px"] == pytest.approx(np.sqrt((9 + 16 + 36) / 32))
    bias = analysis.bias_table(y_true, {"plain": y_pred})
    assert bias[0]["bias_x_px"] == pytest.approx(3 / 16) and bias[0]["bias_y_px"] == pytest.approx(
        (4 + 6) / 16)
    complete, partial = analysis.completeness_table(y_true, y_pred)
    assert (complete["count"], partial["count"]) == (1, 1)
    assert complete["rmse_px"] == pytest.approx(np.sqrt(36 / 30))


@pytest.fixture(scope="module")
def ridge(tmp_path_factory):
    folder = tmp_path_factory.mktemp("analysis") / "data"
    write_kaggle_dataset(folder, n_train=60, n_test=4, seed=3)
    training = load_training(folder)
    labelled = np.isfinite(training.y).all(axis=1)
    model = Pipeline([("pixels", PixelScaler()), ("net", Ridge(alpha=10.0))])
    model.fit(training.X[labelled], training.y[labelled])
    return model, training


def test_a_model_without_a_split_of_its_own_is_scored_on_a_grouped_holdout(ridge, tmp_path):
    model, training = ridge
    said = []
    result = analysis.analyse(model, tmp_path / "ridge.joblib", training, seed=4,
                              say=said.append)
    _, held = grouped_holdout(training.X, analysis.HOLDOUT_FRACTION, 4)
    np.testing.assert_array_equal(result.rows, held)
    assert said[0].startswith(f"scoring {tmp_path / 'ridge.joblib'} on {len(held)} held-out rows")
    assert said[1].startswith("NOTE: a Pipeline has no single validation split")
    assert said[2].startswith("mean x error") and result.notes == [said[1]]
    y, predicted = training.y[held], model.predict(training.X[held])
    assert result.table[-1]["rmse_px"] == pytest.approx(masked_rmse_px(y, predicted))
    assert [r["rank"] for r in result.worst_rows] == list(range(1, len(result.worst) + 1))
    worst = [r["rmse_px"] for r in result.worst_rows]
    assert worst == sorted(worst, reverse=True) and worst[0] == np.nanmax(result.face_rmse)
    assert analysis.model_histories(model) == {}
