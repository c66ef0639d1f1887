"""`kfkd report` (``make report MODEL=... DATA=...``): error analysis of a saved model on
held-out rows, written to ``reports/<model stem>-<UTC stamp>/``: ``report.html`` (one
self-contained page, images embedded as data URIs), the PNGs (RMSE per keypoint, the 16
worst-predicted faces, the learning curves), ``keypoints.csv``, ``bias.csv`` and
``worst-faces.csv``; every file atomically. Which rows and what is measured:
search/analysis.py; the page: search/report_html.py.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from .. import data
from ..keypoints import KEYPOINTS
from ..search.analysis import HOLDOUT_FRACTION, analyse, model_histories
from ..search.report_html import report_page
from ..utils.atomic import atomic_write, create_unique, utc_stamp, write_csv
from ..utils.modelfile import load_model
from . import _options, _plots as plots
from ._shared import origin_of


def make_report(model, model_path, training, out_dir="reports", holdout=False,
                seed=0, say=print) -> Path:
    """Score ``model`` on held-out rows of ``training``; write the report; return the HTML path."""
    model_path = Path(model_path)
    result = analyse(model, model_path, training, holdout=holdout, seed=seed, say=say)
    rows, table, worst = result.rows, result.table, result.worst
    folder = create_unique(Path(out_dir) / f"{model_path.stem}-{utc_stamp()}")
    title = model_path.stem
    figures = {
        "keypoints": plots.keypoint_rmse_bars(
            KEYPOINTS, [r["rmse_x_px"] for r in table[:-1]], [r["rmse_y_px"] for r in table[:-1]],
            [r["rmse_px"] for r in table[:-1]], folder / "keypoint-rmse.png",
            f"{title}: RMSE per keypoint on {len(rows)} held-out faces"),
        "worst": plots.worst_faces_grid(
            training.X[rows[worst]], result.y_true[worst], result.y_pred[worst],
            folder / "worst-faces.png",
            [f"row {r['row']}: {r['rmse_px']:.2f} px" for r in result.worst_rows],
            f"{title}: the {len(worst)} worst-predicted held-out faces", origin_of(model)),
    }
    nets = model_histories(model)
    if nets:
        figures["curves"] = plots.learning_curves(nets if len(nets) > 1 else next(iter(nets.values())),
                                                  folder / "learning-curves.png", title)
    write_csv(folder / "keypoints.csv", pd.DataFrame(table))
    write_csv(folder / "bias.csv", pd.DataFrame(result.bias))
    if result.worst_rows:
        write_csv(folder / "worst-faces.csv", pd.DataFrame(result.worst_rows))

    path = folder / "report.html"
    with atomic_write(path, "w") as f:
        f.write(report_page(result, figures, title, model_path, training))
    return path


def run_report(model_path, data_dir="data", out_dir="reports", holdout=False, seed=0,
               trust=False, say=print) -> Path:
    """Load the model (sha256-checked) and the training data; write the report."""
    model = load_model(model_path, trust=trust)        # fails before anything is written
    folder = data.resolve_data_dir(data_dir, say, origin_of(model))
    training = data.load_training(folder)
    return make_report(model, model_path, training, out_dir=out_dir,
                       holdout=holdout, seed=seed, say=say)


def add_parser(sub):
    p = _options.command_parser(sub, "report")
    _options.add_common(p, net=False)
    _options.add_model(p)
    _options.add_holdout(p, None,
                         "score a grouped hold-out of this share of the rows (seeded by --seed; "
                         f"a bare --holdout: {HOLDOUT_FRACTION}) (default: none, the model's "
                         "own validation split)", bare=HOLDOUT_FRACTION)
    _options.add_seed(p, "the seed of the hold-out")
    _options.add_out(p, "reports", "the folder where the report folder "
                                   "<model stem>-<UTC time>/ goes",
                     old=["--out-dir"])
    _options.add_trust(p)
    p.set_defaults(func=run)


def run(args):
    print(run_report(args.model, data_dir=args.data, out_dir=args.out, holdout=args.holdout,
                     seed=args.seed, trust=args.trust_model))
