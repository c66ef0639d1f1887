"""`kfkd zoo` (``make zoo``): every named configuration trained on the same rows and scored on
the same held-out rows, as a Markdown table in docs/RESULTS.md. The training, scoring and
table are search/zoo.py's; this module builds the estimators from the command line."""
from __future__ import annotations

import argparse

from .. import configs
from ..search.zoo import DEFAULT_NETS, run_zoo
from . import _options


def parse_epoch_caps(text):
    """"25" or "25,net1=400" -> {None: 25, "net1": 400}: a cap for every net, and exceptions."""
    caps = {}
    for item in (text or "").replace(" ", ",").split(","):
        if not item:
            continue
        name, _, value = item.rpartition("=")
        try:
            caps[name or None] = _options.positive_int(value)
        except (ValueError, argparse.ArgumentTypeError):
            raise ValueError(f"--epoch-cap: {item!r} is not N or NET=N with N a positive integer") from None
        if name:
            configs.get_config(name)
    return caps


def add_parser(sub):
    p = _options.command_parser(sub, "zoo")
    _options.add_common(p, net=False)
    _options.add_settings(p, verbose=0)
    p.add_argument("--nets", default=None, metavar="LIST",
                   help="the named nets, comma-separated (default: net1..net8,specialists)")
    p.add_argument("--epoch-cap", default=None, metavar="N[,NET=N...]",
                   help="at most N epochs for every net, with exceptions, e.g. 25,net1=400 "
                        "(default: the tutorial's; --epochs sets them all)")
    _options.add_holdout(p, 0.2, "the share of the rows held out to score every net")
    p.add_argument("--no-tta", action="store_true", help="skip the flip-TTA column")
    _options.add_out(p, "docs/RESULTS.md", "the Markdown file of the table")
    p.set_defaults(func=run)


def run(args):
    nets = args.nets.replace(",", " ").split() if args.nets else DEFAULT_NETS
    for name in nets:
        configs.get_config(name)  # fail before hours of training, not during
    caps = parse_epoch_caps(args.epoch_cap)
    models = {}
    for name in nets:
        model = _options.estimator(args, name)
        cap = caps.get(name, caps.get(None))
        if args.epochs is None and cap is not None:
            configs.configure(model, epochs=min(cap, configs.trained_config(name).max_epochs))
        models[name] = model
    run_zoo(models, data_dir=args.data, holdout=args.holdout, random_state=args.seed,
            tta=not args.no_tta, out=args.out)
    print(args.out)
