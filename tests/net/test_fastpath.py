"""The fast path (kfkd_kit/fastpath.py): the hand-written SGD update, which path is chosen,
and that the fast step gives the plain path's results. CUDA-only tests skip on CPU."""
import copy

import joblib
import numpy as np
import pytest
import torch
from skorch.callbacks import Callback

from kfkd_kit import configs
from kfkd_kit.net import fastpath
from kfkd_kit.utils import malloc
from kfkd_kit.utils import precision as precisions
from kfkd_kit.keypoints import mirror_targets
from kfkd_kit.net.nets import CNN

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")

SMALL_CNN = {"net__module__filters": (4, 4, 4), "net__module__dense": (8, 8)}


def _params(seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(5, 3, generator=g), torch.randn(7, generator=g)]


@pytest.mark.parametrize("as_tensors", [True, False])
@pytest.mark.parametrize("nesterov, weight_decay", [(True, 0.0), (False, 0.0), (True, 1e-3)])
def test_sgd_update_matches_torch_sgd_over_steps_with_changing_lr_and_momentum(
        nesterov, weight_decay, as_tensors):
    ref = [p.clone().requires_grad_(True) for p in _params()]
    ours = [p.clone() for p in _params()]
    bufs = [torch.zeros_like(p) for p in ours]
    optimizer = torch.optim.SGD(ref, lr=0.1, momentum=0.9, nesterov=nesterov,
                                weight_decay=weight_decay)
    lr_t, momentum_t = torch.tensor(0.0), torch.tensor(0.0)
    decay_t = torch.tensor(weight_decay) if weight_decay else None
    g = torch.Generator().manual_seed(1)
    for step in range(6):
        lr, momentum = 0.1 / (step + 1), 0.9 + 0.015 * step
        for group in optimizer.param_groups:
            group["lr"], group["momentum"] = lr, momentum
        lr_t.fill_(lr)
        momentum_t.fill_(momentum)
        grads = [torch.randn(p.shape, generator=g) for p in ours]
        for p, grad in zip(ref, grads):
            p.grad = grad.clone()
        optimizer.step()
        if as_tensors:
            fastpath.sgd_update_(ours, grads, bufs, lr_t, momentum_t, decay_t, nesterov)
        else:
            fastpath.sgd_update_(ours, grads, bufs, lr, momentum, weight_decay or None, nesterov)
        for a, b in zip(ours, ref):
            torch.testing.assert_close(a, b.detach(), rtol=1e-6, atol=1e-6)
    for buf, p in zip(bufs, ref):
        torch.testing.assert_close(buf, optimizer.state[p]["momentum_buffer"], rtol=1e-6, atol=1e-6)
    assert not torch.equal(ours[0], _params()[0])


def test_sgd_update_with_float_settings_equals_tensor_settings():
    a, b = _params(), _params()
    grads = _params(5)
    buf_a, buf_b = [torch.zeros_like(p) for p in a], [torch.zeros_like(p) for p in b]
    fastpath.sgd_update_(a, grads, buf_a, 0.05, 0.9)
    fastpath.sgd_update_(b, grads, buf_b, torch.tensor(0.05), torch.tensor(0.9))
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y)


def _fit(name, X, y, epochs=3, **params):
    pipe = configs.build(name, epochs=epochs, verbose=0, device="cpu")
    pipe.set_params(**params)
    return pipe.fit(X, y)


def test_auto_falls_back_on_cpu_to_the_plain_path(tiny_xy):
    X, y = tiny_xy
    net = configs.build("net1", device="cpu").named_steps["net"]
    assert net.fast_path == "auto"
    a = _fit("net1", X, y)
    b = _fit("net1", X, y, net__fast_path=False)
    assert np.array_equal(a.predict(X), b.predict(X))
    assert getattr(a.named_steps["net"], "_fast_trainer", None) is None


def test_fast_path_true_without_cuda_is_a_clear_error(tiny_xy):
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    X, y = tiny_xy
    with pytest.raises(ValueError, match="fast_path=True cannot apply.*CUDA"):
        _fit("net1", X, y, net__fast_path=True)


def test_unknown_fast_path_value_is_an_error(tiny_xy):
    X, y = tiny_xy
    with pytest.raises(ValueError, match="fast_path must be one of"):
        _fit("net1", X, y, net__fast_path="yes")


def test_tf32_is_no_precision_anywhere_and_says_what_to_use(tiny_xy):
    # it once worked inside the CUDA-graph step only and trained in fp32 elsewhere
    from kfkd_kit.cli import build_parser
    X, y = tiny_xy
    assert "tf32" not in precisions.PRECISIONS and "tf32" not in fastpath.PRECISIONS
    with pytest.raises(ValueError, match=r"got 'tf32' \(tf32 is no longer a precision: use fp32, or bf16"):
        precisions.resolve("tf32", "cpu")
    with pytest.raises(ValueError, match="tf32 is no longer a precision"):
        _fit("net1", X, y, epochs=1, net__precision="tf32")
    train = build_parser(["train"])._subparsers._group_actions[0].choices["train"]
    [option] = [a for a in train._actions if "--precision" in a.option_strings]
    assert tuple(option.choices) == precisions.PRECISIONS           # the CLI offers the same


@pytest.mark.slow
def test_eager_fast_step_gives_the_plain_paths_results_with_schedules(tiny_xy):
    X, y = tiny_xy
    plain = _fit("net4", X, y, net__fast_path=False, **SMALL_CNN)
    fast = _fit("net4", X, y, net__fast_path="eager", **SMALL_CNN)
    hp, hf = plain.named_steps["net"].history, fast.named_steps["net"].history
    for key in ("train_loss", "valid_loss", "lr", "momentum", "train_batch_count"):
        np.testing.assert_allclose(hf[:, key], hp[:, key], rtol=1e-5)
    batch_losses = hf[-1, "batches", :, "train_loss"]
    assert all(type(v) is float for v in batch_losses)
    np.testing.assert_allclose(batch_losses, hp[-1, "batches", :, "train_loss"], rtol=1e-5)
    np.testing.assert_allclose(fast.predict(X), plain.predict(X), atol=1e-3)
    # the optimizer's own momentum buffers were used, so the plain path can carry on
    net = fast.named_steps["net"]
    state = net.optimizer_.state
    assert all(state[p]["momentum_buffer"].abs().sum() > 0 for p in net.module_.parameters())
    assert net.optimizer_.param_groups[0]["momentum"] == pytest.approx(0.999)


def test_warm_up_before_a_capture_at_an_epochs_last_batch_stays_in_the_loss_history(tiny_xy):
    # A capture comes at the first batch of each size: for the partial batch that is the
    # epoch's last. Its warm-up steps once wrote their losses past the end of the loss
    # history, a device-side assert on the GPU. The same code runs eagerly here.
    X, y = tiny_xy
    class Grab(Callback):
        def on_epoch_end(self, net, **kwargs):
            self.trainer = net._fast_trainer

    grab = Grab()
    pipe = configs.build("net4", epochs=1, verbose=0, device="cpu")
    net = pipe.named_steps["net"]
    pipe.set_params(net__fast_path="eager", net__batch_size=32, net__callbacks=list(net.callbacks)
                    + [("grab", grab)], **SMALL_CNN).fit(X, y)
    trainer = grab.trainer
    assert sorted(trainer.slots) == [16, 32] and len(trainer.loss_hist) == 2
    trainer.counter.fill_(len(trainer.loss_hist) - 1)   # where the partial batch's capture starts
    trainer._warm_up(trainer.slots[16])  # two steps; without a reset between them the second raised
    assert torch.isfinite(trainer.loss_hist).all()


@pytest.mark.parametrize("columns", [None, [0, 1, 2, 3, 20, 21, 22, 23, 24, 25], [4, 5, 12, 13]])
def test_target_mirror_is_mirror_targets(columns):
    k = 30 if columns is None else len(columns)
    y = torch.rand(9, k) * 2 - 1
    y[::2, 1:3] = float("nan")
    mirror = fastpath.TargetMirror(columns, k, "cpu")
    expected = mirror_targets(y, columns, unit=True)
    assert torch.equal(torch.nan_to_num(mirror(y), 7.0), torch.nan_to_num(expected, 7.0))
    assert torch.equal(mirror(y).isnan(), expected.isnan())


@pytest.mark.slow
def test_eager_fast_step_with_flips_is_the_plain_path_and_pickles(tiny_xy, tmp_path):
    X, y = tiny_xy
    fast = _fit("net3", X, y, epochs=2, net__fast_path="eager", **SMALL_CNN)
    plain = _fit("net3", X, y, epochs=2, net__fast_path=False, **SMALL_CNN)
    np.testing.assert_allclose(fast.named_steps["net"].history[:, "train_loss"],
                               plain.named_steps["net"].history[:, "train_loss"], rtol=1e-5)
    joblib.dump(fast, tmp_path / "m.joblib")
    assert np.array_equal(joblib.load(tmp_path / "m.joblib").predict(X), fast.predict(X))


class _GradWatcher(Callback):
    def on_grad_computed(self, net, named_parameters, **kwargs):
        self.seen = True


@pytest.mark.parametrize("settings, reason", [
    ({"optimizer": torch.optim.Adam}, "not torch.optim.SGD"),
    ({"optimizer__momentum": 0.9, "optimizer__dampening": 0.1}, "dampening"),
    ({"optimizer__momentum": 0.0}, "without momentum"),
    ({"optimizer__momentum": 0.9, "callbacks": [("watch", _GradWatcher())]}, "on_grad_computed"),
])
def test_where_the_fast_step_cannot_apply_it_says_why(tiny_xy, settings, reason):
    from kfkd_kit.net.estimator import KeypointNet
    from kfkd_kit.net.nets import MLP
    from kfkd_kit.net.pipeline import make_pipeline
    X, y = tiny_xy
    net = KeypointNet(MLP, max_epochs=1, verbose=0, device="cpu", fast_path="auto", **settings)
    make_pipeline(net).fit(X, y)  # "auto" falls back quietly
    iterator = net.get_iterator(net.get_dataset(X.astype(np.float32), y), training=True)
    assert reason in fastpath.unsupported(net, iterator)
    net.set_params(fast_path="eager")
    with pytest.raises(ValueError, match=reason):
        make_pipeline(net).fit(X, y)


def test_the_fast_path_is_opt_in_and_every_named_net_opts_in():
    from kfkd_kit.net.estimator import KeypointNet
    from kfkd_kit.net.nets import MLP
    assert KeypointNet(MLP).fast_path is False
    for name in configs.CONFIGS:
        assert configs.inner_net(configs.build(name)).fast_path == "auto", name


def _why_not_captured(name, X, y, **params):
    """fastpath.unsupported for configs' ``name`` (small CNN layers) about to train on X, y."""
    net = configs.inner_net(configs.build(name, epochs=1, verbose=0, device="cpu"))
    if net.module is CNN:
        params = dict({k.split("__", 1)[1]: v for k, v in SMALL_CNN.items()}, **params)
    net.set_params(**params).initialize()
    dataset = net.get_dataset(X.astype(np.float32) / 255, (y - 48) / 48)
    return fastpath.unsupported(net, net.get_iterator(dataset, training=True))


@pytest.mark.parametrize("name", ["net1", "net2", "net3", "net4", "net5", "net6", "net7",
                                  "specialists"])
def test_the_captured_step_serves_net1_to_net7_and_the_specialists(tiny_xy, name):
    assert _why_not_captured(name, *tiny_xy) is None


def test_the_captured_step_does_not_serve_net8_and_says_why(tiny_xy):
    X, y = tiny_xy
    assert _why_not_captured("net8", X, y) == ("affine or intensity augmentation (the captured "
                                               "step has the flip only)")
    still = _why_not_captured("net8", X, y, **{"iterator_train__" + k: 0.0 for k in configs.NET8_AUGMENT})
    assert still == "the optimizer is AdamW, not torch.optim.SGD"
    model = configs.build("net8", epochs=1, verbose=0, device="cpu")
    with pytest.raises(ValueError, match=r"fast_path='eager' cannot apply: affine or intensity "
                       r"augmentation .*\(the captured step serves net1-net7 and the specialists"):
        model.set_params(net__fast_path="eager").fit(X, y)


def test_cnn_pooling_before_relu_is_the_tutorials_function_and_gradient():
    torch.manual_seed(0)
    net = CNN(filters=(4, 6, 8), dense=(16, 16))
    reference = copy.deepcopy(net)
    for i in (0, 3, 6):  # conv, pool, relu -> conv, relu, pool
        seq = reference.features
        seq[i + 1], seq[i + 2] = seq[i + 2], seq[i + 1]
    assert isinstance(net.features[1], torch.nn.MaxPool2d)
    assert isinstance(reference.features[1], torch.nn.ReLU)
    X = torch.rand(5, 9216)
    out, ref = net(X), reference(X)
    torch.testing.assert_close(out, ref)
    out.sum().backward()
    ref.sum().backward()
    for p, q in zip(net.parameters(), reference.parameters()):
        torch.testing.assert_close(p.grad, q.grad)


def test_reuse_freed_memory_nests_and_restores(monkeypatch):
    import ctypes

    # 1. what it asks of glibc: a stand-in records the mallopt and malloc_trim calls
    class FakeLibc:
        def __init__(self):
            self.calls = []

        def mallopt(self, option, value):
            self.calls.append((option, value))
            return 1

        def malloc_trim(self, pad):
            self.calls.append(("trim", pad))
            return 1

    real_libc = malloc._glibc()
    libc = FakeLibc()
    monkeypatch.setattr(malloc, "_glibc", lambda: libc)
    keep = [(malloc._M_MMAP_MAX, 0), (malloc._M_TRIM_THRESHOLD, 2 ** 31 - 1)]
    defaults = sorted(malloc._GLIBC_DEFAULTS.items())
    with malloc.reuse_freed_memory() as outer:
        assert outer is True and libc.calls == keep
        with malloc.reuse_freed_memory() as inner:
            assert inner is True and libc.calls == keep           # the inner one sets nothing
        assert libc.calls == keep and malloc._reuse_depth == 1    # nor restores anything
    assert sorted(libc.calls[2:4]) == defaults and libc.calls[4:] == [("trim", 0)]
    assert malloc._reuse_depth == 0
    with pytest.raises(RuntimeError):                 # restored when the block raises, too
        with malloc.reuse_freed_memory():
            raise RuntimeError
    assert sorted(libc.calls[7:9]) == defaults and malloc._reuse_depth == 0
    del libc.calls[:]
    with malloc.reuse_freed_memory(enabled=False) as off:
        assert off is False
    assert libc.calls == []
    monkeypatch.undo()

    # 2. what glibc then does (2.33+: mallinfo2): a 64 MB block is mmapped, except within
    if real_libc is None or not hasattr(real_libc, "mallinfo2"):
        return

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
            "fordblks", "keepcost")]
    real_libc.mallinfo2.restype = MallInfo2
    real_libc.malloc.restype = ctypes.c_void_p
    real_libc.free.argtypes = [ctypes.c_void_p]

    def mmapped_64mb():
        # more than the heap holds free, so that no freed chunk left by earlier tests (a
        # fit's heap after malloc_trim still has them) can serve it: mmap, or sbrk within
        info = real_libc.mallinfo2()
        before = info.hblks
        block = real_libc.malloc(64 * 2 ** 20 + info.fordblks)
        try:
            return real_libc.mallinfo2().hblks - before
        finally:
            real_libc.free(block)

    assert mmapped_64mb() == 1
    with malloc.reuse_freed_memory():
        with malloc.reuse_freed_memory():
            assert mmapped_64mb() == 0
        assert mmapped_64mb() == 0                    # the inner exit restored nothing
    assert mmapped_64mb() == 1                        # the outer one restored mmap


# -- CUDA: graphs ------------------------------------------------------------------------------
DEVICE, GRAPHS = "cuda", "auto"  # the CUDA tests' device and fast_path


def _fit_cuda(name, X, y, epochs=3, callbacks=(), **params):
    pipe = configs.build(name, epochs=epochs, verbose=0, device=DEVICE)
    net = pipe.named_steps["net"]
    # batch size 32: 48 training rows make a full batch and a partial one, two graphs
    net.set_params(batch_size=32, fast_path=GRAPHS, callbacks=list(net.callbacks) + list(callbacks))
    pipe.set_params(**params)
    return pipe.fit(X, y)


class _Spy(Callback):
    """Records, at each epoch's end, the sizes of the batches that have a captured graph."""

    def initialize(self):
        self.captured = []
        return self

    def on_epoch_end(self, net, **kwargs):
        trainer = getattr(net, "_fast_trainer", None)
        self.captured.append(sorted(size for size, slot in (trainer.slots.items() if trainer else ())
                                    if slot.graph is not None))


@cuda
def test_cuda_graph_step_gives_the_eager_steps_results(tiny_xy):
    X, y = tiny_xy
    spy = _Spy()
    graph = _fit_cuda("net4", X, y, callbacks=[("spy", spy)], **SMALL_CNN)
    if GRAPHS == "auto":
        assert spy.captured == [[16, 32]] * 3
    eager = _fit_cuda("net4", X, y, net__fast_path="eager", **SMALL_CNN)
    plain = _fit_cuda("net4", X, y, net__fast_path=False, **SMALL_CNN)
    hg, he, hp = (p.named_steps["net"].history for p in (graph, eager, plain))
    for key in ("train_loss", "valid_loss"):
        np.testing.assert_allclose(hg[:, key], he[:, key], rtol=1e-3)
        np.testing.assert_allclose(hg[:, key], hp[:, key], rtol=1e-3)
    assert hg[:, "lr"] == pytest.approx([0.03, 0.01505, 0.0001])
    assert hg[:, "train_batch_count"] == [2, 2, 2]
    assert all(type(v) is float for v in hg[-1, "batches", :, "train_loss"])
    np.testing.assert_allclose(hg[-1, "batches", :, "train_loss"], hp[-1, "batches", :, "train_loss"],
                               rtol=1e-3)


@cuda
def test_cuda_graph_follows_lr_changes_inside_an_epoch(tiny_xy):
    X, y = tiny_xy

    class Freeze(Callback):
        def on_batch_begin(self, net, training=False, **kwargs):
            if training and len(net.history) > 1:  # epoch 1 trains, then lr is 0
                for group in net.optimizer_.param_groups:
                    group["lr"] = 0.0

    class Snapshot(Callback):
        def on_epoch_end(self, net, **kwargs):
            if len(net.history) == 1:
                self.params = [p.detach().clone() for p in net.module_.parameters()]

    snapshot = Snapshot()
    pipe = _fit_cuda("net1", X, y, epochs=3, callbacks=[("freeze", Freeze()), ("snap", snapshot)])
    net = pipe.named_steps["net"]
    for p, q in zip(net.module_.parameters(), snapshot.params):
        torch.testing.assert_close(p, q)
    fresh = configs.build("net1", verbose=0, device=DEVICE).named_steps["net"].initialize()
    assert not torch.equal(next(fresh.module_.parameters()), snapshot.params[0])


@cuda
@pytest.mark.parametrize("name, precision", [("net5", "bf16"), ("net6", "fp32"), ("net1", "bf16")])
def test_cuda_graph_with_flips_dropout_and_precisions_trains_and_pickles(tiny_xy, tmp_path, name, precision):
    X, y = tiny_xy
    params = dict(SMALL_CNN) if name != "net1" else {}
    pipe = _fit_cuda(name, X, y, epochs=3, net__precision=precision, **params)
    history = pipe.named_steps["net"].history
    assert np.all(np.isfinite(history[:, "train_loss"]))
    assert len(set(history[:, "train_loss"])) == 3
    joblib.dump(pipe, tmp_path / "m.joblib")
    np.testing.assert_allclose(joblib.load(tmp_path / "m.joblib").predict(X), pipe.predict(X), rtol=1e-5)
