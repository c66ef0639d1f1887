"""The learning-rate range test (``make lrfind NET=...``): which learning rate to train with.

The net (``configs.build(NET, ...)``) trains for a few hundred batches while its learning
rate grows geometrically, batch by batch, from ``start_lr`` to ``end_lr``; the training loss
of every batch is recorded, and the test stops early once the loss diverges. Everything
runs in skorch's own fit loop: the net's own schedules (linear lr/momentum, net8's
one-cycle), its weight average and early stopping are switched off and replaced by

- ``LRScheduler(policy=ExponentialLR, step_every="batch")`` (skorch's callback around
  torch's scheduler), which also records each batch's lr in the history (``event_lr``);
- ``RangeRecorder``, which reads each batch's ``train_loss`` and ``event_lr`` from
  ``net.history``, smooths the loss and stops the fit (skorch's way: KeyboardInterrupt,
  as its EarlyStopping) after ``num_batches`` batches or when the smoothed loss passes
  ``diverge`` times the best so far (or a loss is not finite).

The suggested learning rate is **the lr of the smoothed loss's minimum, divided by ten**
(``min_loss_lr / 10``), on the curve up to where the smoothed loss first rises above twice
its lowest so far (a net can recover from a blow-up and fall lower still at an lr past
the edge of stability). The lr of the steepest descent of the smoothed loss (against
log lr) is reported beside it, not suggested: the first batches' fast fall from the
random start can fool it (net8 on faces15: 3e-6). For an SGD net (net1-net7) it is the ``LR=`` to train
with; for net8 (AdamW, one-cycle) it is the one-cycle's peak, which is what net8's ``LR=``
sets. The smoothing is an exponential moving average with bias correction (``beta``).

Outputs: a PNG of loss against lr (log x axis), a JSON with the curve and the suggestion,
both written atomically; the suggestion is printed.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
from skorch.callbacks import Callback, LRScheduler
from torch.optim.lr_scheduler import ExponentialLR

from .. import configs
from . import _options

START_LR = 1e-6
END_LR = 1.0
NUM_BATCHES = 250
DIVERGE = 4.0
BETA = 0.9
RISE = 2.0
# the net's own callbacks that would fight the range test
_CURVES = ("lrs", "losses", "smoothed")
_SWITCHED_OFF = ("lr_schedule", "momentum_schedule", "weight_average", "early_stopping")


class RangeRecorder(Callback):
    """Reads each training batch's loss and lr from ``net.history`` (put after the
    LRScheduler, which records ``event_lr``); stops the fit after ``num_batches`` or when
    the smoothed loss exceeds ``diverge`` x its best so far."""

    def __init__(self, num_batches=NUM_BATCHES, diverge=DIVERGE, beta=BETA, bar=None):
        self.num_batches = num_batches
        self.diverge = diverge
        self.beta = beta
        self.bar = bar

    def on_train_begin(self, net, **kwargs):
        self.lrs_, self.losses_, self.smoothed_ = [], [], []
        self.diverged_ = False
        self._average = 0.0

    def on_batch_end(self, net, training=False, **kwargs):
        if not training:
            return
        record = net.history[-1, "batches", -1]
        loss, lr = float(record["train_loss"]), float(record["event_lr"])
        self.lrs_.append(lr)
        self.losses_.append(loss)
        n = len(self.losses_)
        self._average = self.beta * self._average + (1 - self.beta) * loss
        smoothed = self._average / (1 - self.beta ** n)
        self.smoothed_.append(smoothed)
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(lr=f"{lr:.2e}", loss=f"{smoothed:.4g}", refresh=False)
        best = min(self.smoothed_)
        if not math.isfinite(loss) or not math.isfinite(smoothed) or smoothed > self.diverge * best:
            self.diverged_ = True
            raise KeyboardInterrupt  # skorch's fit loop stops here and ends training cleanly
        if n >= self.num_batches:
            raise KeyboardInterrupt


def range_test_estimator(estimator, start_lr=START_LR, end_lr=END_LR, num_batches=NUM_BATCHES,
                         diverge=DIVERGE, beta=BETA, bar=None):
    """A copy of ``estimator`` (``configs.build(...)``, one net) set up for the range test:
    its schedules, weight average and early stopping off, no validation split, the lr
    growing by a constant factor each batch from ``start_lr`` to ``end_lr``."""
    from sklearn.base import clone
    if num_batches < 2:
        raise ValueError(f"the range test needs at least 2 batches, got {num_batches}")
    if not 0 < start_lr < end_lr:
        raise ValueError(f"expected 0 < start_lr < end_lr, got {start_lr:g} and {end_lr:g}")
    try:
        configs.net_prefix(estimator)
    except ValueError:
        raise ValueError(f"the range test needs a single net, not {type(estimator).__name__}") from None
    model = clone(estimator)
    if not hasattr(model, "named_steps"):
        raise ValueError(f"the range test needs a single net, not {type(model).__name__} "
                         f"(for specialists, run it on their net, e.g. net6)")
    net = configs.inner_net(model)
    gamma = (end_lr / start_lr) ** (1.0 / (num_batches - 1))
    callbacks = [(name, cb) for name, cb in net.callbacks if name not in _SWITCHED_OFF]
    callbacks += [
        ("range_lr", LRScheduler(policy=ExponentialLR, step_every="batch", gamma=gamma)),
        ("range_recorder", RangeRecorder(num_batches, diverge, beta, bar)),
    ]
    # every epoch has at least one batch, so num_batches epochs always reach the end;
    # skorch's plain step (the CUDA-graph fast path keeps each batch's loss on the device
    # until the epoch ends, and the recorder needs it at once)
    return model.set_params(net__callbacks=callbacks, net__lr=start_lr, net__max_epochs=num_batches,
                            net__valid_fraction=0.0, net__verbose=0, net__fast_path=False)


def suggest(lrs, smoothed, rise=RISE) -> dict:
    """What a recorded curve suggests: ``suggested_lr`` (= ``min_loss_lr / 10``),
    ``min_loss_lr`` and ``steepest_descent_lr``.

    Only the curve up to where the smoothed loss first rises above ``rise`` x its lowest so
    far counts (a net may recover from a blow-up at a high lr and fall lower still, but
    that lr is past the edge of stability). ``min_loss_lr``: the lr of the smoothed loss's
    minimum there. ``steepest_descent_lr``: the most negative slope of the smoothed loss
    against log lr before that minimum, skipping the first tenth of the batches (None when
    that stretch is under 3 batches); shown, not suggested, as it is easily fooled by the
    first few batches (net8 on faces15: 3e-6). The suggestion is never below the start lr."""
    lrs, smoothed = np.asarray(lrs, float), np.asarray(smoothed, float)
    finite = np.where(np.isfinite(smoothed), smoothed, np.inf)
    risen = np.flatnonzero(finite > rise * np.minimum.accumulate(finite))
    end = int(risen[0]) if risen.size else len(finite)
    lowest = int(np.argmin(finite[:max(end, 1)]))
    steepest = None
    skip = len(lrs) // 10
    if lowest - skip + 1 >= 3:
        part = slice(skip, lowest + 1)
        slopes = np.gradient(smoothed[part], np.log(lrs[part]))
        steepest = float(lrs[part][int(np.argmin(slopes))])
    return {"suggested_lr": max(float(lrs[lowest]) / 10, float(lrs[0])),
            "min_loss_lr": float(lrs[lowest]), "steepest_descent_lr": steepest}


def lr_range_test(estimator, X, y, start_lr=START_LR, end_lr=END_LR, num_batches=NUM_BATCHES,
                  diverge=DIVERGE, beta=BETA) -> dict:
    """Run the range test of ``estimator`` on (X, y); returns the record (curve, suggestion)."""
    from ..utils import progress
    net = configs.inner_net(estimator)
    with progress.bar(total=num_batches, desc="lr range test", unit="batch") as bar:
        model = range_test_estimator(estimator, start_lr, end_lr, num_batches, diverge, beta, bar)
        start = time.perf_counter()
        model.fit(X, y)
        seconds = time.perf_counter() - start
    recorder = dict(configs.inner_net(model).callbacks)["range_recorder"]
    recorder.bar = None
    if len(recorder.lrs_) < 2:
        raise ValueError("the loss diverged at once: lower the start lr")
    return {
        "configured_lr": net.lr,
        "optimizer": net.optimizer.__name__,
        "one_cycle": type(dict(net.callbacks).get("lr_schedule")).__name__ == "OneCycle",
        **suggest(recorder.lrs_, recorder.smoothed_),
        "suggestion": "min_loss_lr / 10",
        "start_lr": start_lr, "end_lr": end_lr, "num_batches": num_batches,
        "batches_run": len(recorder.lrs_), "diverged": recorder.diverged_,
        "diverge_factor": diverge, "beta": beta, "seconds": round(seconds, 3),
        "lrs": recorder.lrs_, "losses": recorder.losses_, "smoothed": recorder.smoothed_,
    }


def run_lrfind(estimator, name="custom", data_dir="data", out_dir="cv", start_lr=START_LR,
               end_lr=END_LR, num_batches=NUM_BATCHES, diverge=DIVERGE, say=print) -> dict:
    """``kfkd lrfind``: load the training data, run the range test, write
    ``<out_dir>/<name>-lrfind.png`` and ``.json``, print the suggestion. Returns the record."""
    from .. import data
    from ..utils import provenance
    from ..utils.atomic import write_json
    from ._plots import lr_range_plot
    from ._shared import data_record
    training = data.load_training(data.resolve_data_dir(data_dir, say))
    say(f"lr range test of {name}: lr {start_lr:g} -> {end_lr:g} over at most {num_batches} "
        f"batches, on {training.source}")
    record = lr_range_test(estimator, training.X, training.y, start_lr, end_lr, num_batches, diverge)
    record = dict(net=name, **record, params=configs.settings(estimator),
                  data=data_record(training, estimator), versions=provenance.library_versions())
    out = Path(out_dir)
    png = lr_range_plot(record["lrs"], record["losses"], record["smoothed"], out / f"{name}-lrfind.png",
                        suggested=record["suggested_lr"], configured=record["configured_lr"],
                        title=f"{name}: lr range test")
    json_path = write_json(out / f"{name}-lrfind.json", {
        key: [v if math.isfinite(v) else None for v in value] if key in _CURVES else value
        for key, value in record.items()})       # strict JSON: a diverged loss becomes null
    stop = (f"stopped at lr {record['lrs'][-1]:.3g} (loss diverged)" if record["diverged"]
            else f"ran {record['batches_run']} batches up to lr {record['lrs'][-1]:.3g}")
    peak = " (the one-cycle peak, LR=)" if record["one_cycle"] else " (LR=)"
    steepest = record["steepest_descent_lr"]
    say(f"{stop}; suggested lr {record['suggested_lr']:.3g}{peak} (the smoothed loss's minimum "
        f"at lr {record['min_loss_lr']:.3g}, / 10); steepest descent at "
        f"{'n/a' if steepest is None else f'{steepest:.3g}'}; configured: {record['configured_lr']:g}")
    say(f"plot: {png}; record: {json_path}")
    return dict(record, png=str(png), json=str(json_path))


def add_parser(sub):
    p = _options.command_parser(sub, "lrfind")
    _options.add_common(p)
    p.add_argument("--start-lr", type=float, default=START_LR, help="the first batch's lr")
    p.add_argument("--end-lr", type=float, default=END_LR, help="the last batch's lr")
    p.add_argument("--batches", type=_options.positive_int, default=NUM_BATCHES, metavar="N",
                   help="training batches at most")
    p.add_argument("--diverge", type=float, default=DIVERGE, metavar="FACTOR",
                   help="stop when the smoothed loss exceeds this x its best")
    _options.add_out(p, "cv", "the folder of the PNG and JSON",
                     old=["--out-dir"])
    p.set_defaults(func=run)


def run(args):
    run_lrfind(_options.estimator(args), name=args.net, data_dir=args.data, out_dir=args.out,
               start_lr=args.start_lr, end_lr=args.end_lr, num_batches=args.batches,
               diverge=args.diverge)
