"""`kfkd lrfind` (``make lrfind NET=...``): the learning-rate range test of a named net on the
training data; a PNG of loss against lr and a JSON with the curve and the suggested lr,
both written atomically, and the suggestion printed. The test itself, and how the lr is
suggested, is search/lrfinder.py's."""
from __future__ import annotations

import math
from pathlib import Path

from .. import configs
from ..search.lrfinder import CURVES, DIVERGE, END_LR, NUM_BATCHES, START_LR, lr_range_test
from . import _options


def run_lrfind(estimator, name="custom", data_dir="data", out_dir="cv", start_lr=START_LR,
               end_lr=END_LR, num_batches=NUM_BATCHES, diverge=DIVERGE, say=print) -> dict:
    """``kfkd lrfind``: load the training data, run the range test, write
    ``<out_dir>/<name>-lrfind.png`` and ``.json``, print the suggestion. Returns the record."""
    from .. import data
    from ..utils import provenance
    from ..utils.atomic import write_json
    from ._plots import lr_range_plot
    from ._shared import data_record, origin_of
    training = data.load_training(data.resolve_data_dir(data_dir, say, origin_of(estimator)))
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
        key: [v if math.isfinite(v) else None for v in value] if key in CURVES else value
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
