import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone

from kfkd_kit import configs
from kfkd_kit.net.batches import ResidentBatches
from kfkd_kit.net.callbacks import LinearSchedule
from kfkd_kit.keypoints import mirror_images, mirror_targets
from kfkd_kit.net.losses import MaskedL1Loss, MaskedMSELoss
from kfkd_kit.net.metrics import masked_rmse_px
from skorch.dataset import Dataset, ValidSplit


def test_masked_mse_matches_hand_computation():
    pred = torch.tensor([[1.0, 2.0], [3.0, 5.0]])
    true = torch.tensor([[0.0, float("nan")], [1.0, 1.0]])
    # labelled errors: 1, 2, 4 -> (1 + 4 + 16) / 3
    assert MaskedMSELoss()(pred, true).item() == pytest.approx(7.0)
    full = torch.tensor([[0.0, 1.0], [1.0, 1.0]])
    assert MaskedMSELoss()(pred, full).item() == pytest.approx(torch.nn.MSELoss()(pred, full).item())


def test_masked_l1_matches_hand_computation_and_ignores_missing_labels():
    pred = torch.tensor([[1.0, 2.0], [3.0, 5.0]], requires_grad=True)
    true = torch.tensor([[0.0, float("nan")], [1.0, 1.0]])
    loss = MaskedL1Loss()(pred, true)
    assert loss.item() == pytest.approx((1 + 2 + 4) / 3)       # labelled errors 1, 2, 4
    loss.backward()
    assert pred.grad[0, 1] == 0 and pred.grad[1, 1] == pytest.approx(1 / 3)
    full = torch.tensor([[0.0, 1.0], [1.0, 1.0]])
    assert MaskedL1Loss()(pred, full).item() == pytest.approx(torch.nn.L1Loss()(pred, full).item())
    assert MaskedL1Loss()(pred, torch.full((2, 2), float("nan"))).item() == 0.0


def test_masked_mse_of_unlabelled_batch_is_zero_not_nan():
    pred = torch.ones(2, 3, requires_grad=True)
    loss = MaskedMSELoss()(pred, torch.full((2, 3), float("nan")))
    loss.backward()
    assert loss.item() == 0.0 and torch.all(pred.grad == 0)


def test_masked_rmse_px():
    assert masked_rmse_px([[1.0, np.nan], [3.0, 4.0]], [[2.0, 9.0], [3.0, 2.0]]) == pytest.approx(
        np.sqrt((1 + 0 + 4) / 3))


def test_resident_batches_cover_a_subset_once_in_shuffled_order():
    X = torch.arange(10, dtype=torch.float32)[:, None]
    y = X * 2
    train, valid = ValidSplit(0.3, random_state=0)(Dataset(X, y))
    torch.manual_seed(0)
    batches = list(ResidentBatches(train, batch_size=3, shuffle=True))
    assert len(batches) == len(ResidentBatches(train, batch_size=3)) == 3
    seen = torch.cat([b[0] for b in batches]).flatten().tolist()
    assert sorted(seen) == sorted(float(i) for i in train.indices)
    assert all(torch.equal(yb, Xb * 2) for Xb, yb in batches)
    in_order = torch.cat([b[0] for b in ResidentBatches(valid, batch_size=2)]).flatten().tolist()
    assert in_order == [float(i) for i in valid.indices]


def test_flip_augmentation_mirrors_images_and_targets_together():
    rng = np.random.default_rng(0)
    X = torch.tensor(rng.random((64, 9216)), dtype=torch.float32)
    y = torch.tensor(rng.uniform(-1, 1, (64, 30)), dtype=torch.float32)
    torch.manual_seed(0)
    (Xb, yb), = ResidentBatches(Dataset(X, y), batch_size=64, flip=True)
    mirrored = torch.all(Xb == mirror_images(X), dim=1)
    kept = torch.all(Xb == X, dim=1)
    assert torch.all(mirrored | kept) and 10 < mirrored.sum() < 54
    assert torch.allclose(yb[mirrored], mirror_targets(y[mirrored], unit=True))
    assert torch.equal(yb[kept], y[kept])


def test_linear_schedule_values():
    schedule = LinearSchedule("momentum", 0.9, 0.999)
    assert schedule.value_at(0, 100) == pytest.approx(0.9)
    assert schedule.value_at(99, 100) == pytest.approx(0.999)
    assert schedule.value_at(1, 1) == 0.9


def test_net_applies_schedules_each_epoch(tiny_xy):
    X, y = tiny_xy
    pipe = configs.build("net4", epochs=3, verbose=0, device="cpu")
    pipe.set_params(net__module__filters=(4, 4, 4), net__module__dense=(8, 8))
    pipe.fit(X, y)
    history = pipe.named_steps["net"].history
    assert history[:, "lr"] == pytest.approx([0.03, 0.01505, 0.0001])
    assert history[:, "momentum"] == pytest.approx([0.9, 0.9495, 0.999])
    assert pipe.named_steps["net"].optimizer_.param_groups[0]["momentum"] == pytest.approx(0.999)


@pytest.mark.slow
def test_pipeline_is_reproducible_clonable_and_picklable(tiny_xy, tmp_path):
    X, y = tiny_xy
    a = configs.build("net1", epochs=3, verbose=0, device="cpu", seed=3).fit(X, y)
    b = clone(a).fit(X, y)
    assert np.array_equal(a.predict(X), b.predict(X))
    c = configs.build("net1", epochs=3, verbose=0, device="cpu", seed=4).fit(X, y)
    assert not np.array_equal(a.predict(X), c.predict(X))
    joblib.dump(a, tmp_path / "m.joblib")
    assert np.array_equal(joblib.load(tmp_path / "m.joblib").predict(X), a.predict(X))


@pytest.mark.slow
def test_predictions_are_in_pixels_and_training_ignores_nan(tiny_xy):
    X, y = tiny_xy
    pipe = configs.build("net1", epochs=30, verbose=0, device="cpu")
    pipe.set_params(net__lr=0.01)
    pipe.fit(X, y)
    history = pipe.named_steps["net"].history
    assert np.all(np.isfinite(history[:, "train_loss"]))
    prediction = pipe.predict(X)
    assert prediction.shape == (60, 30)
    # the mean target is ~48 px; a unit-scale output would sit near 0
    assert 30 < prediction.mean() < 66


def test_epoch_table_has_the_tutorial_columns(tiny_xy, capsys):
    X, y = tiny_xy
    configs.build("net1", epochs=2, device="cpu").fit(X, y)
    out = capsys.readouterr().out
    assert "\x1b[" not in out  # no colour codes when not on a terminal
    header = out.splitlines()[0].split()
    assert header[:5] == ["epoch", "train_loss", "valid_loss", "train/val", "valid_rmse_px"]
    assert header[-1] == "dur"


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n == "specialists"
                                  else n for n in sorted(configs.CONFIGS)])   # six nets: slow
def test_every_named_net_fits_and_predicts(name, tiny_xy):
    X, y = tiny_xy
    pipe = configs.build(name, epochs=1, verbose=0, device="cpu")
    pipe.fit(X[:20], y[:20])
    assert pipe.predict(X[:3]).shape == (3, 30)


def test_unknown_net_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown net 'net9'"):
        configs.build("net9")


def test_net8_trains_on_the_absolute_error_the_tutorials_nets_on_the_squared_error():
    def criterion(name):
        return configs.build(name, device="cpu").named_steps["net"].criterion
    assert criterion("net8") is MaskedL1Loss
    assert all(criterion(f"net{i}") is MaskedMSELoss for i in range(1, 8))
    pipe = configs.build("net8", device="cpu").set_params(net__criterion=MaskedMSELoss)
    assert pipe.named_steps["net"].criterion is MaskedMSELoss     # a parameter like any other


# -- conventions: parameters stay parameters, one score, honest epoch columns -----------------
def _net1(**overrides):
    return configs.build("net1", **{"epochs": 2, "verbose": 0, "device": "cpu",
                                    "complete_only": False, **overrides})


def test_the_validation_split_is_made_at_fit_time_from_the_current_seed(tiny_xy):
    X, y = tiny_xy
    pipe = _net1(seed=1)
    net = pipe.named_steps["net"]
    assert net.train_split == "seeded" and net.get_params()["seed"] == 1  # nothing resolved in __init__
    rows_1 = net.validation_rows(X, y)
    pipe.set_params(net__seed=2)
    rows_2 = net.validation_rows(X, y)
    assert len(rows_1) == len(rows_2) == 12 and set(rows_1) != set(rows_2)
    pipe.fit(X, y)   # the epoch table's valid rows are the ones it says
    assert net.history[-1, "valid_rmse_px"] == pytest.approx(
        masked_rmse_px(y[rows_2], pipe.predict(X[rows_2])), rel=1e-4)
    pipe.set_params(net__valid_fraction=0)
    assert net.validation_rows(X, y) is None


def test_valid_rmse_px_is_the_rmse_over_labelled_values_when_labels_are_missing(tiny_xy):
    X, y = tiny_xy
    y = y.copy()
    y[::2, 2:] = np.nan          # half the rows label one keypoint only: batch means would differ
    pipe = _net1(seed=3).set_params(net__batch_size=8).fit(X, y)
    net = pipe.named_steps["net"]
    rows = net.validation_rows(X, y)
    labelled = masked_rmse_px(y[rows], pipe.predict(X[rows]))
    assert net.history[-1, "valid_rmse_px"] == pytest.approx(labelled, rel=1e-4)
    batch_mean = np.sqrt(net.history[-1, "valid_loss"]) * 48
    assert abs(batch_mean - labelled) > 1e-3 * labelled   # the loss column is the batches' mean


def test_a_sink_of_ones_own_gets_the_epoch_table_even_when_quiet(tiny_xy):
    X, y = tiny_xy
    lines = []
    pipe = _net1(verbose=0).set_params(net__callbacks__print_log__sink=lines.append)
    pipe.fit(X, y)
    rows = [line for line in lines if line.split()[0].isdigit()]
    assert "valid_rmse_px" in lines[0] and len(rows) == 2     # the header, then one row per epoch


def test_score_is_the_negative_rmse_in_pixels_everywhere(tiny_xy):
    from kfkd_kit.meta.ensemble import FoldEnsemble
    from kfkd_kit.meta.specialists import Specialists
    from kfkd_kit.meta.tta import FlipTTA
    X, y = tiny_xy
    for model in (_net1(), FlipTTA(_net1()), FoldEnsemble(_net1(epochs=1), cv=2),
                  Specialists(_net1(epochs=1), groups={"nose": ["nose_tip"]})):
        model.fit(X, y)
        expected = -masked_rmse_px(y, model.predict(X)) if not isinstance(model, Specialists) \
            else -masked_rmse_px(y[:, 20:22], model.predict(X)[:, 20:22])
        target = y if not isinstance(model, Specialists) else np.where(np.isnan(model.predict(X)), np.nan, y)
        assert model.score(X, target) == pytest.approx(expected, rel=1e-6), type(model).__name__
