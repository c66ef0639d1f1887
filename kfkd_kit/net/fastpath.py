"""The fast path: the whole training step captured once in a CUDA graph, then replayed.

The tutorial's nets are small, so on a GPU the time goes to launching kernels, not to the
arithmetic. ``FastTrainer`` runs one training epoch for ``KeypointNet`` with, per batch:
two ``index_select`` launches that gather the batch into static buffers, and one graph
replay that does everything else - flip augmentation (random numbers drawn inside the
graph, targets mirrored by ``TargetMirror``), forward, masked loss, backward and a Nesterov
SGD update (``sgd_update_``). skorch stays in charge of the loop: callbacks get
``on_batch_begin`` / ``on_batch_end`` (``batch`` is the gathered, not yet flipped, batch,
in buffers reused by the next step), and the history gets every batch's loss - as a device
tensor during the epoch, made a float with one sync per epoch for the training and the
validation pass together, so the CPU never waits for the GPU inside an epoch (deferred.py).

The optimizer update reads ``lr``, ``momentum`` (and ``weight_decay``) from device tensors
that are refreshed from ``optimizer.param_groups`` before each step, so schedules
(``LinearSchedule``, per epoch or per batch) change them without a re-capture. The momentum
buffers are the optimizer's own ``state[p]['momentum_buffer']`` tensors, so a later plain
skorch step, or a pickled net, carries on from them. ``p.grad`` is not filled in.

Which nets it serves: those trained with torch.optim.SGD with momentum (Nesterov or not,
weight decay or not) on ``ResidentBatches`` with at most flip augmentation: the tutorial's
net1 ... net7, and the specialists (net6 nets). Not net8: its AdamW, and its affine and
intensity augmentation, are outside the captured step. ``unsupported`` says, in words, what
keeps it from a given net (``SERVES`` names what it serves).

It is opt-in (``KeypointNet(fast_path=...)``, default False); ``configs.build`` opts every
named net in with "auto":

- ``False`` (the estimator's default): always skorch's plain path.
- ``"auto"`` (every ``configs`` net): graphs where the data are on CUDA and ``unsupported``
  finds nothing in the way (it also wants no callback using ``on_grad_computed`` and no
  overridden ``train_step``); else, quietly, skorch's plain path - net8's. A capture that
  fails warns and the step runs uncaptured.
- ``True``: graphs, or a ValueError saying why they cannot apply.
- ``"eager"``: the same step without capture, on any device (what the CPU tests check), or
  a ValueError saying why it cannot apply.

Full batches and the last partial batch each get their own graph (the sizes repeat every
epoch). Graphs live for one ``fit`` call and are never pickled.

On CPU the fast path is malloc.py's ``reuse_freed_memory`` (freed memory kept for reuse
during the fit), used by ``KeypointNet.fit_loop`` unless ``fast_path`` is False.
"""
from __future__ import annotations

import contextlib
import math
import warnings

import torch
from skorch.history import History
from torch.utils.data import Subset

from .batches import ResidentBatches
from .deferred import PendingLosses
from ..keypoints import N_TARGETS, mirror_images, mirror_targets

MODES = ("auto", True, False, "eager")
SERVES = ("net1-net7 and the specialists: torch.optim.SGD with momentum on ResidentBatches, "
          "at most flip augmentation")
PRECISIONS = ("fp32", "bf16")


@torch.no_grad()
def sgd_update_(params, grads, bufs, lr, momentum, weight_decay=None, nesterov=True):
    """In-place SGD with momentum, torch.optim.SGD's semantics (dampening 0).

    buf = momentum * buf + grad; step = grad + momentum * buf (Nesterov) or buf;
    param -= lr * step. With ``bufs`` starting at zero the first step gives buf = grad,
    as torch.optim.SGD does. ``lr``, ``momentum`` and ``weight_decay`` may be floats or
    0-d tensors on the params' device (the latter can change between CUDA graph replays).
    """
    params, grads, bufs = list(params), list(grads), list(bufs)
    if not params:
        return
    if not any(torch.is_tensor(v) for v in (lr, momentum, weight_decay)):
        # plain numbers (no graph to replay): fused scalings, torch.optim.SGD's foreach passes
        if weight_decay:
            grads = torch._foreach_add(grads, params, alpha=weight_decay)
        torch._foreach_mul_(bufs, momentum)
        torch._foreach_add_(bufs, grads)
        steps = torch._foreach_add(grads, bufs, alpha=momentum) if nesterov else bufs
        torch._foreach_add_(params, steps, alpha=-lr)
        return
    if weight_decay is not None:
        grads = torch._foreach_add(grads, torch._foreach_mul(params, weight_decay))
    torch._foreach_mul_(bufs, momentum)
    torch._foreach_add_(bufs, grads)
    if nesterov:
        steps = torch._foreach_mul(bufs, momentum)
        torch._foreach_add_(steps, grads)
        torch._foreach_mul_(steps, lr)
    else:
        steps = torch._foreach_mul(bufs, lr)
    torch._foreach_sub_(params, steps)


def _overrides(obj, base, name):
    return getattr(type(obj), name, None) is not getattr(base, name, None)


def _data_of(iterator):
    """(X, y, n) behind a ResidentBatches iterator, without touching the device."""
    dataset = iterator.dataset
    while isinstance(dataset, Subset):
        dataset = dataset.dataset
    return getattr(dataset, "X", None), getattr(dataset, "y", None), len(iterator.dataset)


def unsupported(net, iterator, fit_params=None):
    """Why the fast training step cannot replace skorch's for this net, or None if it can."""
    from skorch import NeuralNet
    from skorch.callbacks import Callback

    if fit_params:
        return f"fit parameters {sorted(fit_params)} are passed to the module"
    if not isinstance(iterator, ResidentBatches):
        return f"iterator_train is {type(iterator).__name__}, not ResidentBatches"
    if iterator.moves or iterator.jitters:
        return "affine or intensity augmentation (the captured step has the flip only)"
    for name in ("train_step", "train_step_single"):
        if _overrides(net, NeuralNet, name):
            return f"{type(net).__name__} overrides {name}"
    if list(getattr(net, "_optimizers", ["optimizer"])) != ["optimizer"]:
        return "more than one optimizer"
    optimizer = getattr(net, "optimizer_", None)
    if type(optimizer) is not torch.optim.SGD:
        return f"the optimizer is {type(optimizer).__name__}, not torch.optim.SGD"
    for group in optimizer.param_groups:
        if group.get("dampening", 0) or group.get("maximize") or group.get("differentiable"):
            return "SGD with dampening, maximize or differentiable"
        if not group.get("momentum", 0):
            return "SGD without momentum"
    for name, callback in getattr(net, "callbacks_", []):
        if _overrides(callback, Callback, "on_grad_computed"):
            return f"callback {name!r} needs on_grad_computed"
    X, y, _ = _data_of(iterator)
    if not (torch.is_tensor(X) and torch.is_tensor(y)):
        return "the data are not tensors (no targets?)"
    if y.ndim != 2:
        return "targets are not a 2-d array"
    return None


def data_device(iterator):
    X, _, _ = _data_of(iterator)
    return X.device if torch.is_tensor(X) else torch.device("cpu")


class TargetMirror:
    """``keypoints.mirror_targets(y, columns, unit=True)`` as one gather, a multiply and an
    add with index and scale tensors made once, on the device: no Python lists turned into
    tensors per batch, so it can run inside a CUDA graph. Bit-identical results."""

    def __init__(self, target_columns, n_columns, device, axis=None):
        columns = list(range(N_TARGETS)) if target_columns is None else list(target_columns)
        if len(columns) != n_columns:
            raise ValueError(f"targets have {n_columns} columns, target_columns names {len(columns)}")
        offset = mirror_targets(torch.zeros(1, n_columns, dtype=torch.float64), columns, unit=True,
                                axis=axis)[0]
        images = mirror_targets(torch.eye(n_columns, dtype=torch.float64), columns, unit=True,
                                axis=axis) - offset
        source = images.abs().argmax(0)  # output column i comes from input column source[i]
        sign = images[source, torch.arange(n_columns)]
        self.source = source.to(device)
        self.sign = sign.to(torch.float32).to(device)
        self.offset = offset.to(torch.float32).to(device)

    def __call__(self, y):
        return y.index_select(1, self.source) * self.sign + self.offset


def flip_half_graph_safe(Xb, yb, mirror):
    """batches.flip_half with a TargetMirror: the same random draw, the same result."""
    chosen = torch.rand(len(Xb), device=Xb.device) < 0.5
    Xb = torch.where(chosen[:, None], mirror_images(Xb), Xb)
    yb = torch.where(chosen[:, None], mirror(yb), yb)
    return Xb, yb


class _Hyper:
    """Device-tensor copies of one param group's lr / momentum / weight_decay.

    ``sync`` refreshes them from the group (a fill only when a value changed). Whether
    Nesterov and weight decay are used is fixed when the trainer is built (``structure``).
    """

    NAMES = ("lr", "momentum", "weight_decay")

    def __init__(self, group, device):
        self.group = group
        self.values = {k: float(group.get(k, 0.0)) for k in self.NAMES}
        self.tensors = {k: torch.tensor(v, dtype=torch.float32, device=device)
                        for k, v in self.values.items()}
        self.frozen = self.structure()
        self.nesterov, self.decay = self.frozen

    def sync(self):
        group, values = self.group, self.values
        for k in self.NAMES:
            v = float(group.get(k, 0.0))
            if v != values[k]:
                self.tensors[k].fill_(v)
                values[k] = v

    def structure(self):
        return bool(self.group.get("nesterov")), bool(self.group.get("weight_decay"))


class _Slot:
    """Static buffers (and the graph, once captured) for one batch size."""

    def __init__(self, size, X, y):
        self.size = size
        self.X = torch.empty((size,) + tuple(X.shape[1:]), dtype=X.dtype, device=X.device)
        self.y = torch.empty((size,) + tuple(y.shape[1:]), dtype=y.dtype, device=y.device)
        self.graph = None
        self.pred = None
        self.loss = None


class FastTrainer:
    """One fit's training epochs for a ``KeypointNet`` (see the module docstring).

    ``graphs=False`` runs the same step eagerly (any device); ``precision`` is "fp32"
    or "bf16" (autocast), as ``KeypointNet.precision_`` resolved it. ``strict``: a
    failed capture raises; otherwise it warns and the step runs eagerly from then on.
    """

    def __init__(self, net, iterator, graphs=True, precision="fp32", strict=False):
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        X, y, n = _data_of(iterator)
        self.net = net
        self.device = X.device
        self.graphs = graphs
        self.strict = strict
        if graphs and self.device.type != "cuda":
            raise ValueError("CUDA graphs need a CUDA device")
        self.precision = precision
        self.mirror = (TargetMirror(iterator.target_columns, y.shape[1], self.device,
                                    getattr(iterator, "flip_axis", None))
                       if iterator.flip else None)
        self.batch_size = iterator.batch_size
        self.key = self._key(net, iterator)
        optimizer = net.optimizer_
        self.groups = []
        for group in optimizer.param_groups:
            params = [p for p in group["params"] if p.requires_grad]
            bufs = []
            for p in params:
                state = optimizer.state[p]
                if state.get("momentum_buffer") is None:
                    # zeros: the first step then gives buf = grad, as torch.optim.SGD's does
                    state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                bufs.append(state["momentum_buffer"])
            self.groups.append((params, bufs, _Hyper(group, self.device)))
        self.params = [p for params, _, _ in self.groups for p in params]
        self.loss_hist = torch.zeros(max(1, math.ceil(n / self.batch_size)), device=self.device)
        self.counter = torch.zeros(1, dtype=torch.long, device=self.device)
        self.slots = {}
        self.arange = None
        self.pending = PendingLosses()

    @staticmethod
    def _key(net, iterator):
        X, y, n = _data_of(iterator)
        return (id(net.module_), id(net.optimizer_), id(X), id(y), tuple(X.shape[1:]),
                tuple(y.shape[1:]), n, iterator.batch_size, iterator.flip,
                None if iterator.target_columns is None else tuple(iterator.target_columns),
                iterator.drop_last, getattr(iterator, "flip_axis", None))

    def matches(self, net, iterator):
        """Whether this trainer (and its graphs) still fits the net and its data."""
        return (self.key == self._key(net, iterator)
                and all(h.structure() == h.frozen for _, _, h in self.groups))

    # -- the step ---------------------------------------------------------------------
    def _autocast(self):
        if self.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16, cache_enabled=False)
        return contextlib.nullcontext()

    def _step(self, Xb, yb):
        net = self.net
        if self.mirror is not None:
            Xb, yb = flip_half_graph_safe(Xb, yb, self.mirror)
        with self._autocast():
            pred = net.infer(Xb)
            loss = net.get_loss(pred, yb, X=Xb, training=True)
        grads = torch.autograd.grad(loss, self.params, allow_unused=True)
        i = 0
        for params, bufs, hyper in self.groups:
            g = grads[i:i + len(params)]
            i += len(params)
            used = [k for k, grad in enumerate(g) if grad is not None]
            # a graph reads the settings from device tensors; uncaptured, plain numbers do
            t = hyper.tensors if self.graphs else hyper.values
            sgd_update_([params[k] for k in used], [g[k] for k in used], [bufs[k] for k in used],
                        t["lr"], t["momentum"], t["weight_decay"] if hyper.decay else None,
                        hyper.nesterov)
        loss = loss.detach().float()
        with torch.no_grad():
            self.loss_hist.index_copy_(0, self.counter, loss.reshape(1))
            self.counter.add_(1)
        return pred.detach(), loss

    def _state_tensors(self):
        module_buffers = list(self.net.module_.buffers())
        bufs = [b for _, bs, _ in self.groups for b in bs]
        return self.params + bufs + module_buffers + [self.counter, self.loss_hist]

    def _warm_up(self, slot, steps=2):
        """Steps run before a capture. Each writes its loss at slot 0 of the loss history:
        a capture may come at an epoch's last batch, where a second step would write past
        the end (the caller restores every state tensor afterwards)."""
        for _ in range(steps):
            self.counter.zero_()
            self._step(slot.X, slot.y)

    def _capture(self, slot):
        """Warm up on a side stream (all state restored afterwards), then capture one step."""
        state = self._state_tensors()
        with torch.no_grad():
            saved = [t.detach().clone() for t in state]
        rng = torch.cuda.get_rng_state(self.device)
        stream = torch.cuda.Stream(self.device)
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream):
            self._warm_up(slot)
        torch.cuda.current_stream(self.device).wait_stream(stream)
        with torch.no_grad():
            for t, v in zip(state, saved):
                t.copy_(v)
        torch.cuda.set_rng_state(rng, self.device)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            slot.pred, slot.loss = self._step(slot.X, slot.y)
        slot.graph = graph

    def _run(self, slot):
        if self.graphs and slot.graph is None:
            try:
                self._capture(slot)
            except Exception as exc:
                if self.strict:
                    raise
                torch.cuda.synchronize(self.device)
                warnings.warn(f"CUDA graph capture failed ({type(exc).__name__}: {exc}); "
                              "the fast step runs uncaptured for the rest of this fit",
                              RuntimeWarning, stacklevel=2)
                self.graphs = False
        if self.graphs:
            slot.graph.replay()
        else:
            slot.pred, slot.loss = self._step(slot.X, slot.y)

    def _slot(self, size, X, y):
        slot = self.slots.get(size)
        if slot is None:
            slot = self.slots[size] = _Slot(size, X, y)
        return slot

    # -- one epoch --------------------------------------------------------------------
    def run_epoch(self, iterator, prefix="train"):
        """One training epoch. Batch losses stay device tensors in the history until
        ``pending.flush()`` (which the validation pass calls, once for both passes)."""
        net = self.net
        self.pending.flush()
        X, y, order, n = iterator.epoch_rows()
        if order is None:
            if self.arange is None or len(self.arange) != n:
                self.arange = torch.arange(n, device=X.device)
            order = self.arange
        bs = self.batch_size
        stop = n - n % bs if iterator.drop_last else n
        net._set_training(True)
        self.counter.zero_()
        batches = net.history[-1]["batches"]
        first = len(batches)
        count = 0
        notify, groups = net.notify, self.groups
        # skorch's History.record_batch copies the whole history to find the last batch;
        # the batch rows of this epoch are at hand (NeuralNet.on_batch_begin appends them)
        direct = type(net.history) is History
        loss_key, size_key = prefix + "_loss", prefix + "_batch_size"
        for start in range(0, stop, bs):
            rows = order[start:start + bs]
            size = len(rows)
            slot = self.slots.get(size) or self._slot(size, X, y)
            torch.index_select(X, 0, rows, out=slot.X)
            torch.index_select(y, 0, rows, out=slot.y)
            batch = (slot.X, slot.y)
            notify("on_batch_begin", batch=batch, training=True)
            for _, _, hyper in groups:
                hyper.sync()
            self._run(slot)
            loss = self.loss_hist[count]
            if direct:
                row = batches[-1]
                row[loss_key] = loss
                row[size_key] = size
            else:
                net.history.record_batch(loss_key, loss)
                net.history.record_batch(size_key, size)
            notify("on_batch_end", batch=batch, training=True, loss=loss, y_pred=slot.pred)
            count += 1
        net.history.record(prefix + "_batch_count", count)
        self.pending.add(batches[first:first + count], prefix + "_loss", self.loss_hist[:count])
        if self.device.type != "cuda":
            self.pending.flush()
