"""`kfkd make-data`: the built-in synthetic faces written as Kaggle's files."""
from __future__ import annotations


def add_parser(sub):
    p = sub.add_parser("make-data", help="write the built-in synthetic data set in Kaggle's layout")
    p.add_argument("--out", default="data/synthetic")
    p.add_argument("--n-train", type=int, default=7049, help="Kaggle's size by default")
    p.add_argument("--n-test", type=int, default=1783)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--flip-axis", type=float, default=None, metavar="PX",
                   help="write the x labels this axis's offset from 48.5 px to the right of the "
                        "pixels they mark (a planted mirror axis; default 48.5)")
    p.set_defaults(func=run)


def run(args):
    from ..data.synthetic_dataset import write_kaggle_dataset
    paths = write_kaggle_dataset(args.out, n_train=args.n_train, n_test=args.n_test, seed=args.seed,
                                 flip_axis=args.flip_axis)
    for path in paths.values():
        print(path)
