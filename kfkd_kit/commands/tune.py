"""`kfkd tune` (`make tune`): an Optuna search over net8's settings; resumable, and shared by
workers. The search space, storages, pruning, trial loop and the files it writes are the
library's (search/study.py, which says what each does); this module reads the command line
and the training data and calls it."""
from __future__ import annotations

from .. import data
from ..search import study
from ..search.study import DEFAULT_HOLDOUT, DEFAULT_TRIALS
from . import _options
from ._shared import origin_of


def run_tune(estimator, name="net8", data_dir="data", trials=DEFAULT_TRIALS, storage=None,
             study_name=None, holdout=DEFAULT_HOLDOUT, random_state=0, out_dir="cv", fixed=(),
             budget=None, pruner="median", plots=True, say=print) -> dict:
    """``kfkd tune``: the training data in ``data_dir``, then ``study.tune`` (which takes
    the other arguments). Returns its summary."""
    study.require_optuna()      # what needs no data fails before the data are read
    study.check_holdout(holdout)
    training = data.load_training(data.resolve_data_dir(data_dir, say, origin_of(estimator)))
    return study.tune(estimator, training, name=name, trials=trials, storage=storage,
                      study_name=study_name, holdout=holdout, random_state=random_state,
                      out_dir=out_dir, fixed=fixed, budget=budget, pruner=pruner, plots=plots,
                      say=say)


def add_parser(sub):
    p = _options.command_parser(sub, "tune")
    _options.add_data(p)
    p.add_argument("--net", default="net8", choices=("net8",), metavar="NAME",
                   help="the net searched; only net8 has a search space")
    _options.add_settings(p, verbose=0)
    p.add_argument("--trials", type=_options.positive_int, default=DEFAULT_TRIALS, metavar="N",
                   help="run until the study has this many finished trials, in all; the same "
                        "command resumes a study")
    p.add_argument("--storage", default=None, metavar="URL",
                   help="Optuna storage: an RDB URL (sqlite:///..., postgresql://...) or "
                        "journal:PATH; workers given the same one share the study "
                        "(default: sqlite:///OUT/tune-NET.db)")
    p.add_argument("--study", default=None, metavar="NAME", help="study name (default: the net's)")
    _options.add_holdout(p, DEFAULT_HOLDOUT, "the share of the rows held out to score every trial")
    p.add_argument("--no-prune", action="store_true",
                   help="run every trial to the end (default: median pruning on the valid loss)")
    _options.add_out(p, "cv", "the folder of the table, JSON and PNGs",
                     old=["--out-dir"])
    p.set_defaults(func=run)


def run(args):
    fixed = [key for key in ("epochs", "lr") if getattr(args, key) is not None]
    run_tune(_options.estimator(args), name=args.net, data_dir=args.data, trials=args.trials,
             storage=args.storage, study_name=args.study, holdout=args.holdout,
             random_state=args.seed, out_dir=args.out, fixed=fixed, budget=args.budget,
             pruner=None if args.no_prune else "median")
