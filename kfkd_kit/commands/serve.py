"""`kfkd serve`: a web page and a JSON API for keypoints on photos, on this machine.

The model, the limits and the application are serve/'s (service.py, app.py); this module
reads the options, loads the model once and runs the server until Ctrl-C.
"""
from __future__ import annotations

import sys

from . import _options


def add_parser(sub):
    from ..photo.align import MIN_SCORE, MIN_SIZE
    from ..serve.app import MAX_FILES, MAX_UPLOAD, QUEUE
    from ..serve.service import MAX_PIXELS
    p = _options.command_parser(sub, "serve")
    _options.add_model(p, "a saved model (.joblib, .skops) or an exported .onnx (served "
                          "without torch)")
    p.add_argument("--host", default="127.0.0.1", metavar="ADDRESS",
                   help="the address to listen on; only this machine can connect unless you "
                        "give another, e.g. 0.0.0.0 (reachable from the network: a warning says so)")
    p.add_argument("--port", type=_options.positive_int, default=8000, metavar="N",
                   help="the TCP port")
    _options.add_tta(p, "flip test-time augmentation, as for predict")
    p.add_argument("--detector", default="auto", choices=("auto", "mtcnn", "haar"),
                   help="as for predict: auto is mtcnn for a torch model, haar for an .onnx one")
    p.add_argument("--passes", type=_options.positive_int, default=None, metavar="N",
                   help="crops per face, as for predict (default: 1 for mtcnn, 3 for haar)")
    p.add_argument("--min-size", type=float, default=MIN_SIZE, metavar="PX",
                   help="skip faces narrower than PX pixels")
    p.add_argument("--min-score", type=float, default=MIN_SCORE, metavar="S",
                   help="as for predict: drop faces whose detector score is under S")
    p.add_argument("--max-mb", type=float, default=MAX_UPLOAD / 2 ** 20, metavar="MB",
                   help="the largest request, in MiB; a larger one is refused (413)")
    p.add_argument("--max-pixels", type=_options.positive_int, default=MAX_PIXELS, metavar="N",
                   help="the most pixels an image may have; its header is checked before it is "
                        "decoded (413)")
    p.add_argument("--max-files", type=_options.positive_int, default=MAX_FILES, metavar="N",
                   help="the most images in one request")
    p.add_argument("--queue", type=_options.positive_int, default=QUEUE, metavar="N",
                   help="requests that may wait for the model; one more is answered 503 with "
                        "Retry-After")
    _options.add_trust(p)
    p.set_defaults(func=run)


def run(args):
    from ..serve.app import run_server
    from ..serve.service import KeypointService
    if args.max_mb <= 0:
        raise ValueError(f"--max-mb must be above 0, got {args.max_mb:g}")
    service = KeypointService(args.model, detector=args.detector, tta=args.tta,
                              tta_shift=args.tta_shift, passes=args.passes,
                              min_size=args.min_size, trust=args.trust_model,
                              max_pixels=args.max_pixels, min_score=args.min_score)
    run_server(service, host=args.host, port=args.port,
               warn=lambda line: print(f"kfkd serve: {line}", file=sys.stderr),
               max_upload=int(args.max_mb * 2 ** 20), queue_size=args.queue,
               max_files=args.max_files)
