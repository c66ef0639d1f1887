"""The labels' mirror axis: measured from the data (mirror.py), kept by every fitted net,
used by flip augmentation and flip TTA, set by hand with --flip-axis / FLIP_AXIS=."""
import json

import numpy as np
import pytest
import torch

from kfkd_kit import cli, configs, keypoints as kp
from kfkd_kit.net.batches import flip_half
from kfkd_kit.net.estimator import flip_axis_of
from kfkd_kit.data.mirror import (MAX_RMSE_TO_REFINE_PX, estimate_flip_axis, flip_consistent_axis,
                                  label_midlines)
from kfkd_kit.data.synthetic import make_faces
from kfkd_kit.meta.tta import flip_tta


def _planted(n, axis, seed=0):
    X, y = make_faces(n, seed)
    y = y.astype(np.float64)
    y[:, 0::2] += axis - kp.image_axis()
    return X, y


@pytest.mark.parametrize("axis", [48.0, 48.5, 49.0, 48.3])
def test_a_planted_axis_is_recovered(axis):
    X, y = _planted(400, axis)
    assert abs(estimate_flip_axis(X, y) - axis) < 0.1


def test_the_axis_is_a_property_of_the_labels_not_of_the_declared_convention():
    # the same file declared continuous (0.5) or 1-based (1) measures the same axis: only
    # the image's own axis, the fallback, moves with the declaration
    X, y = _planted(300, 48.7, seed=1)
    under = {origin: estimate_flip_axis(X, y, origin=origin) for origin in (0.0, 0.5, 1.0)}
    assert max(under.values()) - min(under.values()) < 0.02, under
    assert abs(under[0.5] - 48.7) < 0.1


@pytest.mark.slow
def test_only_the_common_keypoints_and_a_column_subset_still_measure_it():
    axis = kp.image_axis() + 0.4        # 0.4 px right of the image's axis
    X, y = _planted(400, axis, seed=3)
    common = kp.columns_of(kp.COMMON_KEYPOINTS)
    assert abs(estimate_flip_axis(X, y[:, common], common) - axis) < 0.1
    nose = kp.columns_of(["nose_tip"])   # a midline keypoint alone (a specialist's columns)
    assert abs(estimate_flip_axis(X, y[:, nose], nose) - axis) < 0.15


def test_no_usable_row_gives_the_image_axis():
    X, _ = make_faces(5, 0)
    assert estimate_flip_axis(X, np.full((5, 30), np.nan)) == kp.image_axis() == 48.0
    assert estimate_flip_axis(X, np.full((5, 30), np.nan), origin=1.0) == kp.image_axis(1.0) == 48.5
    y = np.full((2, 30), np.nan)
    y[1, [0, 2]] = (60.0, 30.0)      # the two eye centres' x: midline 45
    assert np.isnan(label_midlines(y)[0]) and label_midlines(y)[1] == 45.0


def test_flip_augmentation_mirrors_labels_about_the_given_axis():
    torch.manual_seed(0)
    X = torch.rand(64, 9216)
    y = kp.to_unit(torch.rand(64, 30) * 60 + 18)
    Xb, yb = flip_half(X, y, axis=49.25)
    flipped = torch.all(Xb == kp.mirror_images(X), dim=1) & ~torch.all(Xb == X, dim=1)
    assert 10 < int(flipped.sum()) < 54
    nose_x = kp.FEATURE_INDEX["nose_tip_x"]
    assert torch.allclose(kp.from_unit(yb[flipped, nose_x]),
                          2 * 49.25 - kp.from_unit(y[flipped, nose_x]), atol=1e-4)


def _fitted(axis="auto", n=120):
    X, y = _planted(n, 48.8)
    model = configs.build("net3", epochs=1, verbose=0, device="cpu", precision="fp32",
                          flip_axis=axis)
    return model.fit(X, y), X


def test_a_fit_measures_keeps_and_tta_uses_the_axis():
    model, X = _fitted()
    net = model.named_steps["net"]
    assert abs(net.flip_axis_ - 48.8) < 0.15 and flip_axis_of(model) == net.flip_axis_
    tta = flip_tta(model)
    # flip TTA is mirror-equivariant about the model's own axis, and about no other
    assert np.allclose(tta.predict(kp.mirror_images(X[:8])),
                       kp.mirror_targets(tta.predict(X[:8]), axis=net.flip_axis_), atol=1e-3)
    assert not np.allclose(tta.predict(kp.mirror_images(X[:8])),
                           kp.mirror_targets(tta.predict(X[:8])), atol=1e-2)


def test_a_given_axis_is_used_as_it_is_and_a_bad_one_refused():
    model, _ = _fitted(axis=47.25, n=40)
    assert model.named_steps["net"].flip_axis_ == 47.25
    with pytest.raises(ValueError, match="flip_axis"):
        _fitted(axis=120.0, n=40)


def test_a_model_saved_before_nets_kept_an_axis_mirrors_about_the_image_centre():
    model, _ = _fitted(n=40)
    del model.named_steps["net"].flip_axis_
    assert flip_axis_of(model) == kp.image_axis()
    del model.named_steps["net"].pixel_origin    # and before the pixel origin was a setting
    assert flip_axis_of(model) == kp.image_axis(kp.LEGACY_PIXEL_ORIGIN) == 48.5


@pytest.mark.slow
@pytest.mark.parametrize("axis", [48.0, 48.5, 49.0])
def test_planted_axes_come_back_through_the_cli(tmp_path, axis):
    data, model = tmp_path / "data", tmp_path / "m.joblib"
    assert cli.main(["make-data", "--out", str(data), "--n-train", "500", "--n-test", "10",
                     "--flip-axis", str(axis)]) == 0
    assert cli.main(["train", "--data", str(data), "--net", "net1", "--epochs", "1",
                     "--model", str(model), "--device", "cpu"]) == 0
    record = json.loads((tmp_path / "m.json").read_text())
    assert record["params"]["flip_axis"] == "auto"
    assert abs(record["params"]["flip_axis_used"] - axis) < 0.1


@pytest.mark.slow
def test_flip_axis_by_hand_through_the_cli_and_a_bad_value(tmp_path, capsys):
    data, model = tmp_path / "data", tmp_path / "m.joblib"
    assert cli.main(["make-data", "--out", str(data), "--n-train", "200", "--n-test", "10"]) == 0
    assert cli.main(["train", "--data", str(data), "--net", "net1", "--epochs", "1",
                     "--flip-axis", "48.25", "--model", str(model), "--device", "cpu"]) == 0
    record = json.loads((tmp_path / "m.json").read_text())
    assert record["params"]["flip_axis"] == 48.25 == record["params"]["flip_axis_used"]
    capsys.readouterr()
    with pytest.raises(SystemExit) as stopped:
        cli.main(["train", "--data", str(data), "--net", "net1", "--flip-axis", "left",
                  "--model", str(tmp_path / "b.joblib")])
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and len(err.strip().splitlines()) == 1
    assert "--flip-axis" in err and not (tmp_path / "b.joblib").exists()


def test_the_flip_consistent_axis_is_the_trained_axis_less_the_nets_x_bias():
    rng = np.random.default_rng(0)
    y = rng.uniform(20, 76, (200, 30))
    y[::2, 4:20] = np.nan
    # a net trained with flips about 48.5 that predicts x 0.2 px too large: its answers on
    # mirrored images are its answers mirrored about 48.5
    direct = y + rng.normal(0, 1.0, y.shape)
    direct[:, 0::2] += 0.2
    mirrored = kp.mirror_targets(direct, axis=48.5)
    axis, rmse = flip_consistent_axis(direct, mirrored, y)
    assert abs(axis - (48.5 - 0.2)) < 0.05 and 0.9 < rmse < 1.2
    # a net trained without flips, right on the faces: its mirrored answers imply the labels' axis
    truth = kp.mirror_targets(y, axis=48.9)
    axis, _ = flip_consistent_axis(y, truth, y)
    assert axis == pytest.approx(48.9)
    # flip TTA about that axis is unbiased on these rows
    tta = (direct + kp.mirror_targets(mirrored, axis=48.3)) / 2
    assert abs(np.nanmean(tta[:, 0::2] - y[:, 0::2])) < 0.05


def test_a_net_that_fits_its_rows_badly_keeps_the_images_axis():
    model, _ = _fitted()          # one epoch: far above 2.5 px on its own rows
    net = model.named_steps["net"]
    assert net.flip_axis_fit_rmse_px_ > MAX_RMSE_TO_REFINE_PX
    assert net.flip_axis_ == net.flip_axis_images_
