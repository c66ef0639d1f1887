"""The command line's shared options: data folder, named net, training settings, and the
estimator they build (configs.build: --params, then the overrides, in one pass).

One name per concept, each the Makefile variable of the same name (--tta-shift is
TTA_SHIFT=): ``--out`` is where a command writes, ``--model`` the model file it writes or
reads, ``--holdout`` a fraction. Every option's help ends with its default, as
"(default: X)". Old spellings (--out-dir, --output, --models, --trust-model, ...) stay
accepted as second option strings, so existing scripts keep working.
"""
from __future__ import annotations

import argparse

DEFAULT_DATA = "data"


class HelpFormatter(argparse.HelpFormatter):
    """Every option's help ends with "(default: X)": written in the help where the default
    needs words, else appended from the option's value. A flag (off by default) and an
    option without a value (None) say nothing more."""

    def _get_help_string(self, action):
        text = action.help or ""
        if ("(default: " in text or not action.option_strings or action.nargs == 0
                or action.default is None or action.default == argparse.SUPPRESS):
            return text
        return f"{text} (default: %(default)s)"


def command_parser(sub, name):
    """The subparser of the command module ``name``, with its one line from
    commands.COMMANDS and the one style of help."""
    from . import COMMANDS, command_name
    return sub.add_parser(command_name(name), help=COMMANDS[name], description=COMMANDS[name],
                          formatter_class=HelpFormatter)


class _LazyConfigs:
    """kfkd_kit.configs, imported on first use: it imports torch, which `kfkd predict` with
    an ONNX model runs without."""

    def __getattr__(self, name):
        from .. import configs as module
        return getattr(module, name)


class _NetNames:
    """The named nets as argparse choices, looked up only when a command needs them."""

    def __contains__(self, name):
        return name in configs.CONFIGS

    def __iter__(self):
        return iter(sorted(configs.CONFIGS))


configs = _LazyConfigs()


def add_data(p, help="the folder of Kaggle's files; only the default, when it holds none, "
                      "falls back to the built-in synthetic faces (in data/synthetic/)"):
    p.add_argument("--data", default=DEFAULT_DATA, metavar="FOLDER", help=help)


def add_common(p, net=True, verbose=0):
    add_data(p)
    if not net:
        return
    p.add_argument("--net", default="net1", choices=_NetNames(), metavar="NAME",
                   help="the named configuration: net1..net8 or specialists")
    add_settings(p, verbose)


def add_settings(p, verbose):
    """The overrides of configs.configure, under the same names (dest = override name)."""
    p.add_argument("--epochs", type=positive_int, default=None, metavar="N",
                   help="override the net's epochs (default: the net's own)")
    add_seed(p, "the seed of the weights, shuffling, splits and augmentation")
    p.add_argument("--lr", type=float, default=None,
                   help="learning rate, net8: the one-cycle peak (default: the net's own)")
    p.add_argument("--momentum", type=float, default=None,
                   help="SGD momentum (default: the net's own)")
    p.add_argument("--device", default=None,
                   help="cpu or cuda (default: cuda if present, else cpu)")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"),
                   help="auto: bf16 autocast where the CPU/GPU computes bf16 natively "
                        "(AMX, AVX512-BF16), else fp32")
    p.add_argument("--patience", "--early-stopping", dest="patience", type=int, default=None,
                   metavar="N",
                   help="stop after N epochs without a better valid loss and keep the best "
                        "weights; 0: off; needs a validation split (default: the net's own)")
    p.add_argument("--budget", type=parse_duration, default=None, metavar="TIME",
                   help="time per fit, e.g. 10m, 90s, 1.5h: the net times its first epochs and "
                        "runs as many as fit, its schedules spread over them; replaces --epochs "
                        "(default: none, the net's epochs)")
    p.add_argument("--valid", "--valid-fraction", dest="valid_fraction", type=fraction,
                   default=None, metavar="F",
                   help="the share of the training rows held out for the epoch table's valid "
                        "loss; 0 trains on every row, and the table shows the train loss only "
                        "(default: the net's own, 0.2, net8 0.1, or train's recipe's, 0 for "
                        "net8's three nets; cv and grid: 0)")
    p.add_argument("--flip-axis", type=flip_axis, default=None, metavar="PX|auto",
                   help="the labels' mirror axis for flip augmentation and flip TTA, in pixels "
                        "(x -> 2 PX - x) (default: auto, measured from the training rows)")
    add_pixel_origin(p, "kept in the model: predict, export and report map coordinates with it")
    p.add_argument("--base", default=None, metavar="MODEL",
                   help="a saved model whose layers (all but the output) start the net; "
                        "for specialists, every one of them (default: none)")
    p.add_argument("--params", default=None, metavar="FILE",
                   help="a JSON of the net's parameters (module__width, lr, ...), e.g. the "
                        "best of kfkd tune; the other settings given here apply on top "
                        "(default: none)")
    p.set_defaults(verbose=verbose)


def add_pixel_origin(p, what, default=None):
    """--pixel-origin: the labels' x (and y) of the top-left pixel's centre."""
    p.add_argument("--pixel-origin", dest="pixel_origin", type=pixel_origin, default=default,
                   metavar="O",
                   help="the labels' x (and y) of the top-left pixel's centre (" + what + "): "
                        "0.5 continuous coordinates (faces15), 1 one-based, 0 zero-based pixel "
                        "centres (default: 0.5; docs/USAGE.md, the pixel convention)")


def pixel_origin(text):
    from ..keypoints import check_pixel_origin
    try:
        return check_pixel_origin(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected the top-left pixel's centre, a number from 0 to 1 (0.5, 1 or 0), "
            f"got {text!r}") from None


def add_seed(p, what):
    p.add_argument("--seed", type=int, default=0, help=what)


def add_model(p, help="the saved model (.joblib or .skops)", default="models/net1.joblib"):
    p.add_argument("--model", default=default, metavar="FILE", help=help)


def add_out(p, default, help, old=()):
    """--out, where the command writes (a file or a folder, as ``help`` says); ``old``: the
    command's earlier spellings of it (--out-dir, --output), still accepted."""
    p.add_argument("--out", *old, dest="out", default=default, metavar="PATH", help=help)


def add_holdout(p, default, help, bare=None):
    """--holdout F, the share of the rows held out; ``bare``: what --holdout alone means."""
    extra = {} if bare is None else dict(nargs="?", const=bare)
    p.add_argument("--holdout", type=open_fraction, default=default, metavar="F", help=help,
                   **extra)


def add_trust(p):
    p.add_argument("--trust", "--trust-model", dest="trust_model", action="store_true",
                   help="load the model without checking its sha256 against its JSON (a model from "
                        "elsewhere; a .joblib file runs code when loaded, so only one you trust)")


def add_tta(p, what):
    p.add_argument("--tta", action="store_true", help=what)
    p.add_argument("--tta-shift", type=tta_shift, default=0, metavar="PX",
                   help="with flip TTA (implies --tta), also average over a 3x3 grid of shifts "
                        "PX whole pixels apart: 18 passes per image instead of 2; 2 is the one "
                        "measured (docs/RESULTS.md); 0: no shifts")


def tta_shift(text):
    from ..keypoints import check_shift
    try:
        return check_shift(int(text))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a whole number of pixels from 0 to 47, got {text!r}") from None


def parse_duration(text):
    """'10m', '90s', '1.5h' or plain seconds -> seconds (float)."""
    units = {"s": 1, "m": 60, "h": 3600}
    number, unit = (text[:-1], text[-1]) if text and text[-1].lower() in units else (text, "s")
    try:
        seconds = float(number) * units[unit.lower()]
    except ValueError:
        seconds = float("nan")
    if not seconds > 0 or seconds == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a time such as 10m, 90s or 1.5h, got {text!r}")
    return seconds


def flip_axis(text):
    if text == "auto":
        return text
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < 96:
        raise argparse.ArgumentTypeError(f"expected 'auto' or pixels in (0, 96), got {text!r}")
    return value


def fraction(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1), got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1), got {text!r}")
    return value


def open_fraction(text):
    """A share strictly between 0 and 1 (a hold-out needs rows on both sides)."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a fraction in (0, 1), e.g. 0.2, got {text!r}")
    return value


def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def weight_fraction(text):
    """A weight 1/k for an integer k >= 1, written 1, 0.5 or 1/2."""
    try:
        num, _, den = text.partition("/")
        value = float(num) / (float(den) if den else 1.0)
    except (ValueError, ZeroDivisionError):
        value = None
    k = 1 / value if value else 0
    if value is None or k < 1 or abs(k - round(k)) > 1e-6:
        raise argparse.ArgumentTypeError(f"expected a weight 1/k for an integer k >= 1 "
                                         f"(1, 1/2, 0.5, 1/3), got {text!r}")
    return value


def estimator(args, name=None, head=None, **settings):
    """The named estimator, built once with its final parameters: the --params file's,
    then this command's settings (``settings`` in place of the ones in ``args``), then
    net8's ``head``."""
    overrides = {key: getattr(args, key) for key in configs.OVERRIDES if hasattr(args, key)}
    overrides.update(settings)
    name = name or args.net
    params_file = getattr(args, "params", None)
    params = configs.load_params(params_file, net=name) if params_file else None
    return configs.build(name, params=params, head=head, source=params_file, **overrides)


def add_recipe(p):
    """--ensemble, --jobs, --heads: what replaces the budget's recipe (recipes.py); train and
    cv take them."""
    p.add_argument("--ensemble", "--models", dest="models", type=positive_int,
                   default=None, metavar="N",
                   help="train N nets (seeds SEED, SEED+1, ...) and save their mean as one model "
                        "(cv: in each fold); a --budget is for all of them; the budget's "
                        "recipe (kfkd_kit/recipes.py) trains net8 on a CPU of two or more "
                        "cores with native bf16 as 2 nets from 10 minutes, 3 from 45 "
                        "(default: the recipe's, else 1)")
    p.add_argument("--jobs", type=int, default=None, metavar="J",
                   help="with --ensemble: nets trained at a time, each in its own process with its "
                        "share of the cores; -1: one per core, at most N (default: the "
                        "recipe's, else -1)")
    p.add_argument("--heads", default=None, metavar="H1,H2",
                   help="net8's head, dense or softargmax; with --ensemble N, the nets' heads in "
                        "turn (dense,softargmax: the nets differ in head as well as seed, which "
                        "averages better) (default: the recipe's, else dense)")


def recipe_plan(args):
    """The budget's recipe for this command line, with its --ensemble/--heads/--jobs/--valid
    on top (recipes.plan): one line says why."""
    from .. import recipes
    heads = args.heads.split(",") if args.heads else None
    if heads and args.net != "net8":
        raise ValueError(f"--heads: only net8 has a choice of heads, not {args.net}")
    if heads and len(heads) > 1 and (args.models or 1) == 1:
        raise ValueError(f"--heads {args.heads}: one net has one head (--ensemble N trains "
                         "N nets, their heads in turn)")
    if args.models and args.models > 1 and args.net == "specialists":
        raise ValueError("--ensemble N trains N copies of one net; specialists are six nets "
                         "already")
    return recipes.plan(args.net, args.budget,
                        recipes.Machine.this_one(args.device, args.precision),
                        models=args.models, heads=heads, jobs=args.jobs,
                        valid_fraction=args.valid_fraction)


def recipe_estimator(args, plan, budget):
    """The plan's estimator: one net's pipeline with the whole ``budget``, or a SeedEnsemble
    of ``plan.models`` nets that shares it out."""
    if plan.models == 1:
        return estimator(args, valid_fraction=plan.valid_fraction,
                         head=plan.heads[0] if plan.heads else None, budget=budget)
    from ..meta.ensemble import SeedEnsemble
    return SeedEnsemble(estimator(args, valid_fraction=plan.valid_fraction, budget=None),
                        seeds=plan.models, n_jobs=plan.jobs,
                        heads=list(plan.heads) if plan.heads else None, budget=budget)


def add_selection(p, folds):
    """The options cv and grid share."""
    p.add_argument("--folds", type=int, default=folds,
                   help="k of the shuffled, seeded k-fold CV")
    # --valid (add_settings) splits each fold's training part; off unless asked
    p.set_defaults(valid_fraction=0.0)
    rows = p.add_mutually_exclusive_group()
    rows.add_argument("--complete-only", dest="complete_only", action="store_true",
                      help="only rows with all 30 keypoints (default: as the net's config)")
    rows.add_argument("--all-rows", dest="complete_only", action="store_false",
                      help="all rows, masked loss (default: as the net's config)")
    p.set_defaults(complete_only=None)
    add_out(p, "cv", "the folder of the CSV, JSON and PNG", old=["--out-dir"])
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="a Dask scheduler, e.g. tcp://10.0.0.5:8786 (default: none, this "
                        "process)")
    p.add_argument("--dask-workers", type=int, default=None, metavar="N",
                   help="start a local Dask cluster of N worker processes (default: none)")
    p.add_argument("--verbose", action="store_const", const=1, default=0,
                   help="per-epoch tables of every fit")


def selection_kwargs(args):
    return dict(name=args.net, data_dir=args.data, folds=args.folds, random_state=args.seed,
                out_dir=args.out, model_path=args.model, scheduler=args.scheduler,
                dask_workers=args.dask_workers)
