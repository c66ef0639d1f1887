import joblib
import numpy as np
import pytest
import torch

from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.frozen import FrozenEstimator

from kfkd_kit import configs
from kfkd_kit.net.estimator import flip_axis_of
from kfkd_kit.keypoints import SPECIALIST_GROUPS, columns_of, mirror_images, mirror_targets
from kfkd_kit.net.nested import histories
from kfkd_kit.net.nets import transfer_weights
from kfkd_kit.meta.specialists import Specialists
from kfkd_kit.meta.tta import FlipTTA, flip_tta

SMALL_CNN = dict(filters=(4, 4, 4), dense=(8, 8))


def test_groups_cover_every_column_once():
    columns = sorted(c for group in SPECIALIST_GROUPS.values() for c in columns_of(group))
    assert columns == list(range(30))


def _net1(epochs=2, **overrides):
    return configs.build("net1", epochs=epochs, verbose=0, device="cpu", **overrides)


@pytest.mark.slow
def test_specialists_fit_on_their_own_rows_and_predict_all_columns(tiny_xy, tmp_path):
    X, y = tiny_xy  # every third row lacks columns 4..19 (eye corners, eyebrows, ...)
    model = Specialists(_net1(seed=7)).fit(X, y)
    assert len(model.rows_["eye_centers"]) == 60
    assert np.array_equal(model.rows_["eyebrows"], np.flatnonzero(np.arange(60) % 3))
    assert set(histories(model)) == set(SPECIALIST_GROUPS)
    for i, (name, pipeline) in enumerate(model.models_.items()):
        net = pipeline.named_steps["net"]
        assert net.seed == 7 + i                     # a seed of its own, from the template's
        assert net.module_.output.out_features == len(model.columns_[name])
    assert model.estimator.named_steps["net"].seed == 7  # the template is left as it was
    prediction = model.predict(X[:5])
    assert prediction.shape == (5, 30) and np.all(np.isfinite(prediction))
    joblib.dump(model, tmp_path / "s.joblib")
    assert np.array_equal(joblib.load(tmp_path / "s.joblib").predict(X[:5]), prediction)


def test_specialists_of_any_regressor_fit_their_columns(tiny_xy):
    from sklearn.dummy import DummyRegressor
    X, y = tiny_xy
    model = Specialists(DummyRegressor(), groups={"nose": ["nose_tip"]}).fit(X, y)
    prediction = model.predict(X[:3])
    assert np.allclose(prediction[:, 20:22], np.nanmean(y[:, 20:22], axis=0))
    assert np.isnan(prediction[:, :20]).all()


def test_build_specialists_is_a_meta_estimator_whose_overrides_reach_every_net():
    model = configs.build("specialists", epochs=3, patience=0, valid_fraction=0.25, lr=0.02,
                          device="cpu")
    net = model.estimator.named_steps["net"]
    assert (net.max_epochs, net.valid_fraction, net.lr) == (3, 0.25, 0.02)
    assert dict(net.callbacks)["early_stopping"].patience is None   # 0 turns it off
    default = configs.build("specialists").estimator.named_steps["net"]
    assert dict(default.callbacks)["early_stopping"].patience == configs.SPECIALIST_PATIENCE


def test_the_specialists_configuration_is_its_net_and_nothing_else():
    config = configs.get_config("specialists")
    assert config.specialist_net == "net6" and config.module is None
    assert configs.trained_config("specialists") is configs.get_config("net6")
    assert configs.trained_config("net3") is configs.get_config("net3")
    assert configs.trained_config("specialists").max_epochs == 3000   # the zoo's epochs column
    net6 = configs.settings(configs.build("net6"))
    assert configs.settings(configs.build("specialists")) == dict(
        net6, early_stopping=configs.SPECIALIST_PATIENCE)
    with pytest.raises(ValueError, match="give a module or a specialist_net"):
        configs.NetConfig("neither", "no module, no specialist net")


def test_transfer_weights_copies_all_but_the_output_layer(tiny_xy):
    X, y = tiny_xy
    base = configs.build("net2", epochs=1, verbose=0, device="cpu")
    base.set_params(net__module__filters=(4, 4, 4), net__module__dense=(8, 8))
    base.fit(X, y)
    special = configs.build("net2", verbose=0, device="cpu", seed=5)
    special.set_params(net__module__filters=(4, 4, 4), net__module__dense=(8, 8),
                       net__module__n_outputs=4)
    special.named_steps["net"].initialize()
    source, target = base.named_steps["net"].module_, special.named_steps["net"].module_
    copied = transfer_weights(source, target)
    assert len(copied) == len(list(target.parameters())) - 2
    for name in copied:
        assert torch.equal(source.state_dict()[name], target.state_dict()[name])
    assert target.output.weight.shape == (4, 8)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["path", "frozen"])
def test_pretrained_specialists_start_from_the_base_and_survive_clone(tiny_xy, tmp_path, how):
    X, y = tiny_xy
    from kfkd_kit.utils.modelfile import save_model
    base = _net1().fit(X, y)
    save_model(base, tmp_path / "base.joblib", {})      # as make train saves it, sha256 and all
    source = str(tmp_path / "base.joblib") if how == "path" else FrozenEstimator(base)
    def template():
        return Specialists(_net1(epochs=1, lr=1e-9, momentum=0.5, seed=11))

    model = clone(configs.configure(template(), base=source)).fit(X, y)
    hidden = base.named_steps["net"].module_.hidden.weight
    for pipeline in model.models_.values():
        # with a vanishing learning rate the hidden layer stays the pre-trained one
        assert torch.allclose(pipeline.named_steps["net"].module_.hidden.weight, hidden, atol=1e-6)
    fresh = template().fit(X, y)
    assert not torch.allclose(fresh.models_["eye_centers"].named_steps["net"].module_.hidden.weight,
                              hidden, atol=1e-3)


def test_pretrained_net_of_another_shape_is_a_clear_error(tiny_xy):
    X, y = tiny_xy
    base = _net1(epochs=1).fit(X, y)
    model = configs.build("net2", epochs=1, device="cpu", verbose=0, base=FrozenEstimator(base))
    with pytest.raises(ValueError, match="does not match"):
        Specialists(model).fit(X, y)


class _Fixed(RegressorMixin, BaseEstimator):
    """A fitted 'model' that predicts the same keypoints for every image."""

    def __init__(self, keypoints=None):
        self.keypoints = keypoints

    def fit(self, X, y=None):
        self.keypoints_ = np.asarray(self.keypoints, float)
        return self

    def predict(self, X):
        return np.tile(self.keypoints_, (len(X), 1))


def test_flip_tta_averages_with_the_unmirrored_prediction():
    keypoints = np.arange(30, dtype=float) + 30  # left_eye_center_x = 30, right_eye_center_x = 32
    out = flip_tta(_Fixed(keypoints).fit(None)).predict(np.zeros((2, 9216), np.uint8))
    # left eye x: mean of 30 and the mirrored right-eye x (97 - 32); y: mean of 31 and 33
    assert out[0, 0] == pytest.approx((30 + 97 - 32) / 2)
    assert out[0, 1] == pytest.approx((31 + 33) / 2)
    # nose tip (columns 20, 21) has no partner: x averages with its own mirror
    assert out[0, 20] == pytest.approx((50 + 97 - 50) / 2)


def test_flip_tta_is_equivariant_and_clone_keeps_a_frozen_model(tiny_xy):
    X, y = tiny_xy
    trained = _net1().fit(X, y)
    tta = FlipTTA(_net1()).fit(X, y)
    # the prediction for a mirrored face is the mirrored prediction for the face, about
    # the axis the model measured
    axis = flip_axis_of(tta)
    np.testing.assert_allclose(tta.predict(mirror_images(X[:6])),
                               mirror_targets(tta.predict(X[:6]), axis=axis), atol=1e-3)
    plain = trained.predict(X[:6])
    assert not np.allclose(trained.predict(mirror_images(X[:6])), mirror_targets(plain, axis=axis),
                           atol=1e-3)
    wrapped = clone(FlipTTA(FrozenEstimator(trained))).fit(X, y)   # as in cross_validate
    np.testing.assert_allclose(wrapped.predict(X[:6]), flip_tta(trained).predict(X[:6]))
    assert wrapped.estimator_.estimator is trained                 # nothing refitted
