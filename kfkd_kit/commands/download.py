"""`kfkd download`: the competition's files from Kaggle (the kaggle package), unpacked
into the data folder."""
from __future__ import annotations

import argparse

from . import _kaggle


def add_parser(sub):
    p = sub.add_parser("download", help="download and unpack the competition's files from "
                                        "Kaggle (the kaggle package) into the data folder")
    p.add_argument("--data", default="data", help="where the files go (default: data/)")
    p.add_argument("--competition", default=_kaggle.COMPETITION, help=argparse.SUPPRESS)
    p.set_defaults(func=run)


def run(args):
    def fetch(api):
        for path in api.download(args.data, competition=args.competition):
            print(path)
    return _kaggle.call("download", fetch)
