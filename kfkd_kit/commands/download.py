"""`kfkd download`: the competition's files from Kaggle (the kaggle package), unpacked
into the data folder."""
from __future__ import annotations

import argparse

from ..data.kaggle_api import COMPETITION
from . import _options
from ._shared import kaggle_call


def add_parser(sub):
    p = _options.command_parser(sub, "download")
    _options.add_data(p, help="the folder the files go into")
    p.add_argument("--competition", default=COMPETITION, help=argparse.SUPPRESS)
    p.set_defaults(func=run)


def run(args):
    def fetch(api):
        for path in api.download(args.data, competition=args.competition):
            print(path)
    return kaggle_call("download", fetch)
