"""`kfkd` command line: the same words as the Makefile (train, submit, ...)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


class _LazyConfigs:
    """kfkd_kit.configs, imported on first use: it imports torch, which `kfkd predict` with
    an ONNX model runs without."""

    def __getattr__(self, name):
        from . import configs as module
        return getattr(module, name)


class _NetNames:
    """The named nets as argparse choices, looked up only when a command needs them."""

    def __contains__(self, name):
        return name in configs.CONFIGS

    def __iter__(self):
        return iter(sorted(configs.CONFIGS))


configs = _LazyConfigs()


def _add_common(p, net=True, verbose=0):
    p.add_argument("--data", default="data", help="folder with Kaggle's files (default: data/)")
    if not net:
        return
    p.add_argument("--net", default="net1", choices=_NetNames(),
                   help="named configuration (default: net1)")
    _add_settings(p, verbose)


def _add_settings(p, verbose):
    """The overrides of configs.configure, under the same names (dest = override name)."""
    p.add_argument("--epochs", type=_positive_int, default=None, help="override the net's epochs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr", type=float, default=None, help="learning rate (net8: the one-cycle peak)")
    p.add_argument("--momentum", type=float, default=None, help="SGD momentum")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if present)")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"),
                   help="auto: bf16 autocast where the CPU/GPU computes bf16 natively "
                        "(AMX, AVX512-BF16), else fp32 (default: auto)")
    p.add_argument("--early-stopping", dest="patience", type=int, default=None, metavar="PATIENCE",
                   help="stop after PATIENCE epochs without a better valid loss and keep the "
                        "best weights (0: off; needs a validation split)")
    p.add_argument("--budget", type=parse_duration, default=None, metavar="TIME",
                   help="time per fit, e.g. 10m, 90s, 1.5h: the net times its first epochs and "
                        "runs as many as fit, its schedules spread over them (replaces --epochs)")
    p.add_argument("--flip-axis", type=_flip_axis, default=None, metavar="PX|auto",
                   help="the labels' mirror axis for flip augmentation and flip TTA, in pixels "
                        "(x -> 2 PX - x); default auto: measured from the training rows")
    p.add_argument("--base", default=None, metavar="MODEL",
                   help="a saved model whose layers (all but the output) start the net; "
                        "for specialists, every one of them")
    p.add_argument("--params", default=None, metavar="FILE",
                   help="a JSON of the net's parameters (module__width, lr, ...), e.g. the "
                        "best of kfkd tune; the other settings given here apply on top")
    p.set_defaults(verbose=verbose)


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


def _flip_axis(text):
    if text == "auto":
        return text
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < 96:
        raise argparse.ArgumentTypeError(f"expected 'auto' or pixels in (0, 96), got {text!r}")
    return value


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _estimator(args, name=None):
    """The named estimator, built once, with the --params file's parameters and then this
    command's overrides applied."""
    overrides = {key: getattr(args, key) for key in configs.OVERRIDES if hasattr(args, key)}
    name = name or args.net
    estimator = configs.build(name)
    if getattr(args, "params", None):   # the file first: what the command line says wins
        configs.apply_params(estimator, configs.load_params(args.params, net=name), args.params)
    return configs.configure(estimator, **overrides)


def cmd_train(args):
    from .train import train
    metadata = train(_estimator(args), data_dir=args.data, model_path=args.model, name=args.net,
                     description=configs.get_config(args.net).description,
                     params_file=args.params)
    return 130 if metadata["metrics"]["interrupted"] else 0  # Ctrl-C: saved, but not finished


def _add_selection(p, folds):
    p.add_argument("--folds", type=int, default=folds,
                   help=f"k of the shuffled, seeded k-fold CV (default: {folds})")
    p.add_argument("--valid-fraction", type=float, default=0.0,
                   help="the net's own validation split, from each fold's training part (default 0: off)")
    rows = p.add_mutually_exclusive_group()
    rows.add_argument("--complete-only", dest="complete_only", action="store_true",
                      help="only rows with all 30 keypoints (default: as the net's config)")
    rows.add_argument("--all-rows", dest="complete_only", action="store_false",
                      help="all rows, masked loss")
    p.set_defaults(complete_only=None)
    p.add_argument("--out-dir", default="cv", help="where the CSV/JSON/PNG go (default: cv/)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="Dask scheduler, e.g. tcp://10.0.0.5:8786")
    p.add_argument("--dask-workers", type=int, default=None, metavar="N",
                   help="start a local Dask cluster of N worker processes")
    p.add_argument("--verbose", action="store_const", const=1, default=0,
                   help="per-epoch tables of every fit")


def _selection_kwargs(args):
    return dict(name=args.net, data_dir=args.data, folds=args.folds, random_state=args.seed,
                out_dir=args.out_dir, model_path=args.model, scheduler=args.scheduler,
                dask_workers=args.dask_workers)


def cmd_cv(args):
    from .selection import run_cv
    run_cv(_estimator(args), keep_models=args.keep_models, **_selection_kwargs(args))


def cmd_grid(args):
    from .selection import parse_floats, run_grid
    run_grid(_estimator(args), lrs=parse_floats(args.lrs), momenta=parse_floats(args.momenta),
             refit=args.refit, **_selection_kwargs(args))


def predict_in_chunks(model, X, chunk=512):
    """``model.predict(X)`` a chunk of rows at a time, with a progress bar (on a terminal,
    data.progress_bar). Every estimator here predicts each row on its own, and a chunk is a
    whole number of the nets' batches (128), so the result is the same."""
    import numpy as np
    from .data import progress_bar
    parts = []
    with progress_bar(total=len(X), desc="predicting", unit="image") as bar:
        for start in range(0, len(X), chunk):
            parts.append(np.asarray(model.predict(X[start:start + chunk])))
            bar.update(len(parts[-1]))
    return np.concatenate(parts) if parts else model.predict(X)


def cmd_submit(args):
    from . import data
    from .modelfile import load_model
    from .submission import build_submission, submission_path, write_submission

    model_path = Path(args.model)
    model = load_model(model_path, trust=args.trust_model)
    if args.tta:
        from .tta import flip_tta
        model = flip_tta(model)
    folder = data.data_folder(args.data)     # the user's own files, never a synthetic stand-in
    synthetic = folder / data.SYNTHETIC_FOLDER
    if data.find_file(folder, "test") is None and data.find_file(synthetic, "test") is not None:
        raise FileNotFoundError(
            f"{folder}: no test file; the built-in synthetic faces that train used when it found "
            f"none are in {synthetic}: submit for their test set with DATA={synthetic}")
    test = data.load_test(folder)
    lookup = data.load_lookup(args.lookup or folder)
    print(f"predicting {len(test.X)} test images from {test.source} with {model_path}")
    table = build_submission(predict_in_chunks(model, test.X), test.image_ids, lookup)
    name = model_path.stem + ("-tta" if args.tta else "")
    if args.output:
        path = write_submission(table, lookup, args.output)
    else:                                  # a new file: never replaces an earlier submission
        path = write_submission(table, lookup, submission_path(args.out_dir, name), exclusive=True)
    print(path)
    if args.kaggle:                        # the CSV is written and checked: now upload it
        return _kaggle_call("submit", lambda api: api.upload(path, args.message or path.name))


def _kaggle_call(command, call):
    """Run ``call(kaggle_api module)``; a KaggleError is one line on stderr and exit 2."""
    from . import kaggle_api
    try:
        result = call(kaggle_api)
    except kaggle_api.KaggleError as exc:
        print(f"kfkd {command}: error: {exc}", file=sys.stderr)
        return 2
    if isinstance(result, str):
        print(result)
    return 0


def cmd_download(args):
    def fetch(kaggle_api):
        for path in kaggle_api.download(args.data, competition=args.competition):
            print(path)
    return _kaggle_call("download", fetch)


def cmd_report(args):
    from .report import run_report
    print(run_report(args.model, data_dir=args.data, out_dir=args.out_dir, holdout=args.holdout,
                     seed=args.seed, trust=args.trust_model))


def cmd_lrfind(args):
    from .lrfind import run_lrfind
    run_lrfind(_estimator(args), name=args.net, data_dir=args.data, out_dir=args.out_dir,
               start_lr=args.start_lr, end_lr=args.end_lr, num_batches=args.batches,
               diverge=args.diverge)


def cmd_tune(args):
    from .tune import run_tune
    fixed = [key for key in ("epochs", "lr") if getattr(args, key) is not None]
    if getattr(args, "budget", None):   # a time budget (--budget): the epochs are not searched
        fixed.append("budget")
    run_tune(_estimator(args), name=args.net, data_dir=args.data, trials=args.trials,
             storage=args.storage, study_name=args.study, holdout=args.holdout,
             random_state=args.seed, out_dir=args.out_dir, fixed=fixed,
             pruner=None if args.no_prune else "median")


def cmd_compare(args):
    from .compare import run_compare
    run_compare(args.models_dir)


def parse_epoch_caps(text):
    """"25" or "25,net1=400" -> {None: 25, "net1": 400}: a cap for every net, and exceptions."""
    caps = {}
    for item in (text or "").replace(" ", ",").split(","):
        if not item:
            continue
        name, _, value = item.rpartition("=")
        try:
            caps[name or None] = _positive_int(value)
        except (ValueError, argparse.ArgumentTypeError):
            raise ValueError(f"--epoch-cap: {item!r} is not N or NET=N with N a positive integer") from None
        if name:
            configs.get_config(name)
    return caps


def cmd_zoo(args):
    from .zoo import DEFAULT_NETS, run_zoo
    nets = args.nets.replace(",", " ").split() if args.nets else DEFAULT_NETS
    for name in nets:
        configs.get_config(name)  # fail before hours of training, not during
    caps = parse_epoch_caps(args.epoch_cap)
    models = {}
    for name in nets:
        model = _estimator(args, name)
        cap = caps.get(name, caps.get(None))
        if args.epochs is None and cap is not None:
            configs.configure(model, epochs=min(cap, configs.get_config(name).max_epochs))
        models[name] = model
    run_zoo(models, data_dir=args.data, holdout=args.holdout, random_state=args.seed,
            tta=not args.no_tta, out=args.out)
    print(args.out)


def cmd_predict(args):
    from .predict import run_predict
    run_predict(args.images, args.model, out=args.out, annotated=args.annotated, tta=args.tta,
                trust=args.trust_model, detector=args.detector, passes=args.passes,
                min_size=args.min_size, data_dir=args.data)


def cmd_export(args):
    from .export import export_onnx
    print(export_onnx(args.model, args.out, trust=args.trust_model))


def cmd_make_data(args):
    from .synthetic import write_kaggle_dataset
    paths = write_kaggle_dataset(args.out, n_train=args.n_train, n_test=args.n_test, seed=args.seed,
                                 flip_axis=args.flip_axis)
    for path in paths.values():
        print(path)


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad command line gives one line on stderr (and exit status 2)
    instead of the usage block: the line says what is wrong and where --help is."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _add_predict(sub):
    """`kfkd predict`: its own function, so that main can parse it without the other
    commands, whose defaults import torch (an .onnx model predicts without it)."""
    from .predict import MIN_SIZE
    p = sub.add_parser("predict", help="keypoints of the faces in your own photos: a CSV, and "
                                       "copies with the faces drawn")
    p.add_argument("images", nargs="+", metavar="PHOTO_OR_FOLDER",
                   help="image files, or folders (the images directly in them)")
    p.add_argument("--model", default="models/net1.joblib",
                   help="a saved model (.joblib, .skops) or an exported .onnx")
    p.add_argument("--out", default="keypoints.csv", help="the CSV (default: keypoints.csv)")
    p.add_argument("--annotated", default=None, metavar="DIR",
                   help="also write each photo with its boxes and keypoints drawn into DIR")
    p.add_argument("--tta", action="store_true",
                   help="flip test-time augmentation, as for submit")
    p.add_argument("--detector", default="auto", choices=("auto", "mtcnn", "haar"),
                   help="auto (default): mtcnn (facenet-pytorch, needs torch) for a torch "
                        "model, haar (OpenCV) for an .onnx one, which then runs without torch")
    p.add_argument("--passes", type=_positive_int, default=None,
                   help="crops per face, each re-aligned on the last one's keypoints "
                        "(default: 1 for mtcnn, 3 for haar)")
    p.add_argument("--min-size", type=float, default=MIN_SIZE, metavar="PX",
                   help=f"skip (and count) faces narrower than PX pixels (default {MIN_SIZE})")
    p.add_argument("--data", default=None, metavar="FOLDER",
                   help="training data to measure the mean keypoint layout from, for a model "
                        "saved without one")
    p.add_argument("--trust-model", action="store_true",
                   help="load the model without checking its sha256 against its JSON")
    p.set_defaults(func=cmd_predict)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="kfkd", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a named net; save model, JSON and PNGs")
    _add_common(p, verbose=1)
    p.add_argument("--model", default=None, help="output path (default: models/<net>.joblib)")
    p.add_argument("--quiet", dest="verbose", action="store_const", const=0, help="no per-epoch table")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("submit", help="write a Kaggle submission CSV from a saved model")
    _add_common(p, net=False)
    p.add_argument("--model", default="models/net1.joblib")
    p.add_argument("--lookup", default=None, help="IdLookupTable.csv (default: the data folder's)")
    p.add_argument("--out-dir", default="submissions")
    p.add_argument("--output", default=None, help="exact output path (overrides --out-dir)")
    p.add_argument("--tta", action="store_true",
                   help="flip test-time augmentation: average with the mirrored image's prediction")
    p.add_argument("--trust-model", action="store_true",
                   help="load the model without checking its sha256 against its JSON (a model from "
                        "elsewhere; a .joblib file runs code when loaded, so only one you trust)")
    p.add_argument("--kaggle", action="store_true",
                   help="then upload the CSV to the competition (the kaggle package, credentials "
                        "in ~/.kaggle/kaggle.json or KAGGLE_USERNAME/KAGGLE_KEY)")
    p.add_argument("--message", default=None,
                   help="the submission's description on Kaggle (default: the CSV's name)")
    p.set_defaults(func=cmd_submit)

    p = sub.add_parser("report", help="error analysis of a saved model on held-out rows: "
                                      "RMSE per keypoint, worst faces, learning curves (HTML)")
    _add_common(p, net=False)
    p.add_argument("--model", default="models/net1.joblib")
    p.add_argument("--holdout", action="store_true",
                   help="score a grouped 20%% hold-out (seeded by --seed) instead of the model's "
                        "own validation split")
    p.add_argument("--seed", type=int, default=0, help="seed of the hold-out (default: 0)")
    p.add_argument("--out-dir", default="reports",
                   help="where the report folder <model stem>-<UTC time>/ goes (default: reports/)")
    p.add_argument("--trust-model", action="store_true",
                   help="load the model without checking its sha256 against its JSON")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("download", help="download and unpack the competition's files from "
                                        "Kaggle (the kaggle package) into the data folder")
    p.add_argument("--data", default="data", help="where the files go (default: data/)")
    p.add_argument("--competition", default="facial-keypoints-detection", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_download)

    p = sub.add_parser("cv", help="k-fold cross-validation of a named net (RMSE px per fold)")
    _add_common(p)
    _add_selection(p, folds=5)
    p.add_argument("--keep-models", action="store_true",
                   help="save the k fold models as one ensemble (usable by submit)")
    p.add_argument("--model", default=None,
                   help="ensemble path (default: models/<net>-cv<k>.ensemble.joblib)")
    p.set_defaults(func=cmd_cv)

    p = sub.add_parser("grid", help="GridSearchCV over learning rate x momentum")
    _add_common(p)
    _add_selection(p, folds=3)
    p.add_argument("--lrs", default=None, metavar="LIST",
                   help="comma-separated (default: 0.001,0.003,0.01,0.03)")
    p.add_argument("--momenta", default=None, metavar="LIST",
                   help="comma-separated (default: 0.8,0.9,0.95)")
    p.add_argument("--refit", action="store_true", help="refit the best on all rows and save it")
    p.add_argument("--model", default=None, help="refit model path (default: models/<net>-grid.joblib)")
    p.set_defaults(func=cmd_grid)

    p = sub.add_parser("zoo", help="train every configuration, score on one held-out split, "
                                   "write a Markdown results table")
    _add_common(p, net=False)
    _add_settings(p, verbose=0)
    p.add_argument("--nets", default=None, help="comma-separated (default: net1..net8,specialists)")
    p.add_argument("--epoch-cap", default=None, metavar="N[,NET=N...]",
                   help="at most N epochs for every net, with exceptions, e.g. 25,net1=400 "
                        "(default: the tutorial's; --epochs sets them all)")
    p.add_argument("--holdout", type=float, default=0.2)
    p.add_argument("--no-tta", action="store_true", help="skip the flip-TTA column")
    p.add_argument("--out", default="docs/RESULTS.md")
    p.set_defaults(func=cmd_zoo)

    from .lrfind import DIVERGE, END_LR, NUM_BATCHES, START_LR
    p = sub.add_parser("lrfind", help="learning-rate range test: loss against an exponentially "
                                      "growing lr; plot, JSON and a suggested lr")
    _add_common(p)
    p.add_argument("--start-lr", type=float, default=START_LR, help=f"default {START_LR:g}")
    p.add_argument("--end-lr", type=float, default=END_LR, help=f"default {END_LR:g}")
    p.add_argument("--batches", type=_positive_int, default=NUM_BATCHES,
                   help=f"training batches at most (default {NUM_BATCHES})")
    p.add_argument("--diverge", type=float, default=DIVERGE,
                   help=f"stop when the smoothed loss exceeds this x its best (default {DIVERGE:g})")
    p.add_argument("--out-dir", default="cv", help="where the PNG and JSON go (default: cv/)")
    p.set_defaults(func=cmd_lrfind)

    from .tune import DEFAULT_HOLDOUT, DEFAULT_TRIALS
    p = sub.add_parser("tune", help="Optuna search over net8's width, dropout, augmentation, "
                                    "weight decay, lr and epochs (resumable, shareable)")
    p.add_argument("--data", default="data", help="folder with Kaggle's files (default: data/)")
    p.add_argument("--net", default="net8", choices=("net8",), help="the net searched (net8)")
    _add_settings(p, verbose=0)
    p.add_argument("--trials", type=_positive_int, default=DEFAULT_TRIALS,
                   help=f"run until the study has this many finished trials, in all "
                        f"(default {DEFAULT_TRIALS}); the same command resumes a study")
    p.add_argument("--storage", default=None, metavar="URL",
                   help="Optuna storage: an RDB URL (sqlite:///..., postgresql://...) or "
                        "journal:PATH; workers given the same one share the study "
                        "(default: sqlite:///OUT_DIR/tune-NET.db)")
    p.add_argument("--study", default=None, metavar="NAME", help="study name (default: the net's)")
    p.add_argument("--holdout", type=float, default=DEFAULT_HOLDOUT,
                   help=f"fraction of rows held out to score every trial (default {DEFAULT_HOLDOUT})")
    p.add_argument("--no-prune", action="store_true",
                   help="run every trial to the end (default: median pruning on the valid loss)")
    p.add_argument("--out-dir", default="cv", help="where the table, JSON and PNGs go (default: cv/)")
    p.set_defaults(func=cmd_tune)

    p = sub.add_parser("compare", help="the saved models side by side, best validation RMSE first")
    p.add_argument("--models-dir", default="models", help="default: models/")
    p.set_defaults(func=cmd_compare)

    _add_predict(sub)

    p = sub.add_parser("export", help="the fitted net as an ONNX graph (crop in, keypoints "
                                      "in pixels out), checked against torch")
    p.add_argument("--model", default="models/net1.joblib")
    p.add_argument("--out", default=None, help="default: the model's path with .onnx")
    p.add_argument("--trust-model", action="store_true",
                   help="load the model without checking its sha256 against its JSON")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("make-data", help="write the built-in synthetic data set in Kaggle's layout")
    p.add_argument("--out", default="data/synthetic")
    p.add_argument("--n-train", type=int, default=7049, help="Kaggle's size by default")
    p.add_argument("--n-test", type=int, default=1783)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--flip-axis", type=float, default=None, metavar="PX",
                   help="write the x labels this axis's offset from 48.5 px to the right of the "
                        "pixels they mark (a planted mirror axis; default 48.5)")
    p.set_defaults(func=cmd_make_data)
    return parser


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["predict"]:          # the predict command alone: no torch for an .onnx model
        parser = _Parser(prog="kfkd", description=__doc__)
        _add_predict(parser.add_subparsers(dest="command", required=True))
    else:
        parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "message", None) is not None and not getattr(args, "kaggle", False):
        parser.error("--message is the Kaggle submission's description: it needs --kaggle")
    try:
        code = args.func(args)
    except (ValueError, FileNotFoundError, OSError) as exc:
        # Bad input: one clear line, non-zero exit (outputs are written atomically,
        # so nothing partial is left behind).
        print(f"kfkd {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"kfkd {args.command}: interrupted", file=sys.stderr)
        return 130
    return code or 0


if __name__ == "__main__":
    sys.exit(main())
