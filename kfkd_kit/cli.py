"""`kfkd` command line: the same words as the Makefile (train, submit, ...)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import configs


def _add_common(p, net=True):
    p.add_argument("--data", default="data", help="folder with Kaggle's files (default: data/)")
    if net:
        p.add_argument("--net", default="net1", choices=sorted(configs.CONFIGS),
                       help="named configuration (default: net1)")
        p.add_argument("--epochs", type=int, default=None, help="override the net's epochs")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if present)")


def cmd_train(args):
    from .train import train
    train(net=args.net, data_dir=args.data, model_path=args.model, epochs=args.epochs,
          seed=args.seed, device=args.device, early_stopping=args.early_stopping,
          verbose=0 if args.quiet else 1)


def cmd_submit(args):
    import joblib

    from . import data
    from .submission import build_submission, submission_path, write_submission
    from .train import resolve_data_dir

    model_path = Path(args.model)
    if not model_path.is_file():
        raise FileNotFoundError(f"{model_path}: no such model; run `make train` first")
    model = joblib.load(model_path)
    folder = resolve_data_dir(args.data)
    test = data.load_test(folder)
    lookup = data.load_lookup(args.lookup or folder)
    print(f"predicting {len(test.X)} test images from {test.source} with {model_path}")
    table = build_submission(model.predict(test.X), test.image_ids, lookup)
    path = write_submission(table, lookup, args.output or submission_path(args.out_dir, model_path.stem))
    print(path)


def cmd_make_data(args):
    from .synthetic import write_kaggle_dataset
    paths = write_kaggle_dataset(args.out, n_train=args.n_train, n_test=args.n_test, seed=args.seed)
    for path in paths.values():
        print(path)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kfkd", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a named net; save model, JSON and PNGs")
    _add_common(p)
    p.add_argument("--model", default=None, help="output path (default: models/<net>.joblib)")
    p.add_argument("--early-stopping", type=int, default=None, metavar="PATIENCE",
                   help="stop after PATIENCE epochs without a better valid loss; keep the best")
    p.add_argument("--quiet", action="store_true", help="no per-epoch table")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("submit", help="write a Kaggle submission CSV from a saved model")
    _add_common(p, net=False)
    p.add_argument("--model", default="models/net1.joblib")
    p.add_argument("--lookup", default=None, help="IdLookupTable.csv (default: the data folder's)")
    p.add_argument("--out-dir", default="submissions")
    p.add_argument("--output", default=None, help="exact output path (overrides --out-dir)")
    p.set_defaults(func=cmd_submit)

    p = sub.add_parser("make-data", help="write the built-in synthetic data set in Kaggle's layout")
    p.add_argument("--out", default="data/synthetic")
    p.add_argument("--n-train", type=int, default=7049, help="Kaggle's size by default")
    p.add_argument("--n-test", type=int, default=1783)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_make_data)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ValueError, FileNotFoundError, OSError) as exc:
        # Bad input: one clear line, non-zero exit (outputs are written atomically,
        # so nothing partial is left behind).
        print(f"kfkd {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"kfkd {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
