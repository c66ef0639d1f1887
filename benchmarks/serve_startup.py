"""`kfkd serve`'s start-up: seconds until /healthz answers, seconds to the first answer, and
the server's memory (RSS), for each model given: an exported ``.onnx`` serves without torch,
a ``.joblib`` loads torch (and, with the mtcnn detector, facenet's nets).

    python -m benchmarks.serve_startup --model models/net8.onnx models/net8.joblib \
        [--detector haar] [--repeat 3]

Each model is started ``--repeat`` times (fresh processes, on localhost); the table shows the
medians. Nothing is written.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

from .serve_load import ASTRONAUT, post, rss_mb, start_server, stop


def measure(model, detector):
    import httpx
    process, base, ready = start_server(model, "--detector", detector)
    try:
        idle = rss_mb(process.pid)
        start = time.perf_counter()
        with httpx.Client(timeout=300) as session:
            assert post(session, base, ASTRONAUT).status_code == 200
        first = time.perf_counter() - start
        return ready, first, idle, rss_mb(process.pid)
    finally:
        stop(process)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", nargs="+", required=True)
    p.add_argument("--detector", default="auto")
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args(argv)
    from kfkd_kit.utils.provenance import cpu_model
    print(f"{cpu_model()}, {os.cpu_count()} cores; detector {args.detector}; medians of "
          f"{args.repeat} starts\n")
    print("| model | ready s | first answer s | RSS MiB ready | RSS MiB after one photo |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for model in args.model:
        runs = [measure(model, args.detector) for _ in range(args.repeat)]
        ready, first, idle, after = (statistics.median(column) for column in zip(*runs))
        print(f"| {model} | {ready:.2f} | {first:.2f} | {idle:.0f} | {after:.0f} |")


if __name__ == "__main__":
    main()
