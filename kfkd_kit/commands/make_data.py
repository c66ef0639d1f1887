"""`kfkd make-data`: the built-in synthetic faces written as Kaggle's files."""
from __future__ import annotations

from pathlib import Path

from . import _options


def add_parser(sub):
    p = _options.command_parser(sub, "make_data")
    _options.add_data(p, help="the data folder: the set goes into its synthetic/ folder, "
                              "where train finds it when the default data folder has no "
                              "Kaggle files")
    _options.add_out(p, None, "the folder of the set (default: DATA/synthetic, for another "
                              "--pixel-origin O DATA/synthetic-originO)")
    p.add_argument("--n-train", type=int, default=7049, metavar="N",
                   help="training rows (Kaggle's count)")
    p.add_argument("--n-test", type=int, default=1783, metavar="N",
                   help="test rows (Kaggle's count)")
    _options.add_seed(p, "the seed of the faces")
    p.add_argument("--flip-axis", type=float, default=None, metavar="PX",
                   help="write the x labels this axis's offset from the image's axis (48 px "
                        "for pixel origin 0.5) to the right of the pixels they mark, a planted "
                        "mirror axis (default: the image's axis)")
    _options.add_pixel_origin(p, "the labels are written in it")
    p.set_defaults(func=run)


def run(args):
    from ..data.synthetic_dataset import write_kaggle_dataset
    from ..data import synthetic_folder
    out = args.out or synthetic_folder(args.data, args.pixel_origin)
    origin = {} if args.pixel_origin is None else {"pixel_origin": args.pixel_origin}
    paths = write_kaggle_dataset(out, n_train=args.n_train, n_test=args.n_test, seed=args.seed,
                                 flip_axis=args.flip_axis, **origin)
    for path in paths.values():
        print(path)
