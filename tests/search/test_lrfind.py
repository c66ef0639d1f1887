"""The learning-rate range test on tiny synthetic data (kfkd_kit.search.lrfinder, and `kfkd lrfind`)."""
import json

import numpy as np
import pytest

from kfkd_kit import configs
from kfkd_kit.cli import main
from kfkd_kit.search.lrfinder import RangeRecorder, lr_range_test, range_test_estimator, suggest
from kfkd_kit.data import write_kaggle_dataset


def _net(name="net1", **kw):
    model = configs.build(name, device="cpu", precision="fp32", **kw)
    return model.set_params(net__batch_size=16)


@pytest.mark.slow
def test_lr_grows_geometrically_batch_by_batch(tiny_xy):
    X, y = tiny_xy
    record = lr_range_test(_net("net2"), X, y, start_lr=1e-5, end_lr=1e-2, num_batches=12,
                           diverge=1e9)
    lrs = np.asarray(record["lrs"])
    assert record["batches_run"] == 12 and not record["diverged"]
    np.testing.assert_allclose(lrs[0], 1e-5)
    np.testing.assert_allclose(lrs[-1], 1e-2, rtol=1e-6)
    ratios = lrs[1:] / lrs[:-1]
    np.testing.assert_allclose(ratios, ratios[0], rtol=1e-6)   # one factor, every batch
    assert 1e-5 <= record["suggested_lr"] <= 1e-2
    assert len(record["losses"]) == len(record["smoothed"]) == 12


@pytest.mark.slow
def test_divergence_stops_early(tiny_xy):
    X, y = tiny_xy
    record = lr_range_test(_net(), X, y, start_lr=1e-4, end_lr=1e6, num_batches=200)
    assert record["diverged"] and record["batches_run"] < 200
    assert record["start_lr"] <= record["suggested_lr"] <= record["lrs"][-1]


def test_the_nets_own_schedules_are_switched_off():
    model = range_test_estimator(configs.build("net8", device="cpu"), num_batches=10)
    names = [name for name, _ in configs.inner_net(model).callbacks]
    assert "lr_schedule" not in names and "weight_average" not in names
    assert names[-2:] == ["range_lr", "range_recorder"]
    assert configs.inner_net(model).valid_fraction == 0
    with pytest.raises(ValueError, match="single net"):
        range_test_estimator(configs.build("specialists"))


def test_suggest_min_loss_over_ten_and_steepest_descent():
    lrs = np.logspace(-6, 0, 61)
    loss = 1 / (1 + np.exp(4 * (np.log10(lrs) + 3)))        # falls fastest at 1e-3
    loss[50:] = np.linspace(0.01, 5, 11)                      # lowest at lrs[49], then climbs
    found = suggest(lrs, loss)
    assert found["min_loss_lr"] == lrs[49] and found["suggested_lr"] == pytest.approx(lrs[49] / 10)
    assert found["steepest_descent_lr"] == pytest.approx(1e-3, rel=0.3)
    recovered = loss.copy()                                   # a blow-up, then lower still
    recovered[50:] = np.r_[np.full(5, 0.5), np.full(6, 1e-6)]
    assert suggest(lrs, recovered) == found
    short = suggest(lrs[:2], [2.0, 1.0])                     # too short to have a slope
    assert short["steepest_descent_lr"] is None and short["suggested_lr"] == lrs[0]


def test_recorder_stops_on_a_non_finite_loss():
    class Net:
        pass
    recorder = RangeRecorder()
    recorder.on_train_begin(None)
    net = Net()
    net.history = _History([{"train_loss": 1.0, "event_lr": 0.1}])
    recorder.on_batch_end(net, training=True)
    net.history = _History([{"train_loss": float("nan"), "event_lr": 1.0}])
    with pytest.raises(KeyboardInterrupt):
        recorder.on_batch_end(net, training=True)
    assert recorder.diverged_


class _History:
    def __init__(self, batches):
        self.batches = batches

    def __getitem__(self, key):
        assert key == (-1, "batches", -1)
        return self.batches[-1]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["net1", "net8"])
def test_command_writes_png_and_json(tmp_path, capsys, name):
    write_kaggle_dataset(tmp_path / "data", n_train=60, n_test=4, seed=2)
    out = tmp_path / "out"
    assert main(["lrfind", "--data", str(tmp_path / "data"), "--net", name, "--device", "cpu",
                 "--precision", "fp32", "--batches", "15", "--out", str(out)]) == 0
    png, record = out / f"{name}-lrfind.png", out / f"{name}-lrfind.json"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    meta = json.loads(record.read_text())
    assert meta["net"] == name and 1 < meta["batches_run"] <= 15
    assert meta["start_lr"] <= meta["suggested_lr"] <= meta["end_lr"]
    assert meta["optimizer"] == ("AdamW" if name == "net8" else "SGD")
    assert meta["one_cycle"] is (name == "net8")
    assert meta["data"]["fingerprint"] and meta["params"]["lr"] == meta["configured_lr"]
    printed = capsys.readouterr().out
    assert "suggested lr" in printed and str(png) in printed
