import joblib
import numpy as np
import pytest
import torch

from kfkd_kit import configs
from kfkd_kit.keypoints import SPECIALIST_GROUPS, columns_of, mirror_images
from kfkd_kit.specialists import Specialists, transfer_weights
from kfkd_kit.tta import FlipTTA

SMALL_CNN = dict(filters=(4, 4, 4), dense=(8, 8))


def test_groups_cover_every_column_once():
    columns = sorted(c for group in SPECIALIST_GROUPS.values() for c in columns_of(group))
    assert columns == list(range(30))


def test_specialists_fit_on_their_own_rows_and_predict_all_columns(tiny_xy, tmp_path):
    X, y = tiny_xy  # every third row lacks columns 4..19 (eye corners, eyebrows, ...)
    model = Specialists(net="net1", max_epochs=2, early_stopping=None, device="cpu")
    model.fit(X, y)
    assert len(model.rows_["eye_centers"]) == 60
    assert np.array_equal(model.rows_["eyebrows"], np.flatnonzero(np.arange(60) % 3))
    assert set(model.histories_) == set(SPECIALIST_GROUPS)
    prediction = model.predict(X[:5])
    assert prediction.shape == (5, 30) and np.all(np.isfinite(prediction))
    joblib.dump(model, tmp_path / "s.joblib")
    assert np.array_equal(joblib.load(tmp_path / "s.joblib").predict(X[:5]), prediction)


def test_transfer_weights_copies_all_but_the_output_layer(tiny_xy):
    X, y = tiny_xy
    base = configs.build("net2", max_epochs=1, verbose=0, device="cpu")
    base.set_params(net__module__filters=(4, 4, 4), net__module__dense=(8, 8))
    base.fit(X, y)
    special = configs.build("net2", verbose=0, device="cpu", n_outputs=4, seed=5)
    special.set_params(net__module__filters=(4, 4, 4), net__module__dense=(8, 8))
    special.named_steps["net"].initialize()
    source, target = base.named_steps["net"].module_, special.named_steps["net"].module_
    copied = transfer_weights(source, target)
    assert len(copied) == len(list(target.parameters())) - 2
    for name in copied:
        assert torch.equal(source.state_dict()[name], target.state_dict()[name])
    assert target.output.weight.shape == (4, 8)


def test_pretrained_specialists_start_from_the_saved_net(tiny_xy, tmp_path):
    X, y = tiny_xy
    base = configs.build("net1", max_epochs=2, verbose=0, device="cpu").fit(X, y)
    joblib.dump(base, tmp_path / "base.joblib")
    model = Specialists(net="net1", max_epochs=1, early_stopping=None, device="cpu",
                        lr=1e-9, momentum=0.5, pretrained=str(tmp_path / "base.joblib"))
    model.fit(X, y)
    hidden = base.named_steps["net"].module_.hidden.weight
    for pipeline in model.models_.values():
        # with a vanishing learning rate the hidden layer stays the pre-trained one
        assert torch.allclose(pipeline.named_steps["net"].module_.hidden.weight, hidden, atol=1e-6)


def test_pretrained_net_of_another_shape_is_a_clear_error(tiny_xy):
    X, y = tiny_xy
    base = configs.build("net1", max_epochs=1, verbose=0, device="cpu").fit(X, y)
    with pytest.raises(ValueError, match="does not match"):
        Specialists(net="net2", max_epochs=1, device="cpu", pretrained=base).fit(X, y)


class _Fixed:
    """A 'model' that predicts the same keypoints for every image, and counts mirrors."""

    def __init__(self, keypoints):
        self.keypoints = np.asarray(keypoints, float)

    def predict(self, X):
        return np.tile(self.keypoints, (len(X), 1))


def test_flip_tta_averages_with_the_unmirrored_prediction():
    keypoints = np.arange(30, dtype=float) + 30  # left_eye_center_x = 30, right_eye_center_x = 32
    tta = FlipTTA(_Fixed(keypoints), prefit=True)
    out = tta.predict(np.zeros((2, 9216), np.uint8))
    # left eye x: mean of 30 and the mirrored right-eye x (97 - 32); y: mean of 31 and 33
    assert out[0, 0] == pytest.approx((30 + 97 - 32) / 2)
    assert out[0, 1] == pytest.approx((31 + 33) / 2)
    # nose tip (columns 20, 21) has no partner: x averages with its own mirror
    assert out[0, 20] == pytest.approx((50 + 97 - 50) / 2)


def test_flip_tta_wraps_a_trained_pipeline(tiny_xy):
    X, y = tiny_xy
    tta = FlipTTA(configs.build("net1", max_epochs=2, verbose=0, device="cpu")).fit(X, y)
    symmetric = np.concatenate([X[:2], mirror_images(X[:2])])
    out = tta.predict(symmetric)
    assert out.shape == (4, 30) and np.all(np.isfinite(out))
