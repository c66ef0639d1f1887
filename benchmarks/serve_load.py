"""`kfkd serve` under a bounded load, on localhost only, against `kfkd predict` on the same
photos.

Starts `kfkd serve` (a subprocess on a free 127.0.0.1 port), sends it ``--clients`` concurrent
clients for ``--seconds`` (each posts one photo at a time, in turn from ``--photos``, and waits
for the answer), samples the server's memory (RSS) every half second, then times `kfkd
predict` on 2 x ``--cli-photos`` photos from the same list (one process: with its start-up;
and, from a second run on half as many, without it) and prints one Markdown table: throughput
(photos/s), latency p50/p95/p99, errors, RSS at the start, the end and its peak, and the
server/CLI throughput ratios (target: >= 0.8, no error, memory flat).

    python -m benchmarks.serve_load --model models/net8.joblib [--photos a.jpg b.jpg]
        [--clients 8] [--seconds 60] [--cli-photos 50] [--detector auto] [--trust]

Nothing is written but a temporary CSV of predict's, removed at the end. Only 127.0.0.1 is
contacted: the load never leaves the machine.
"""
from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ASTRONAUT = ROOT / "tests" / "fixtures" / "astronaut.jpg"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(model, *extra, port=None):
    """(process, base URL, seconds until /healthz answered) of `kfkd serve` on localhost."""
    import httpx
    port = port or free_port()
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "kfkd_kit", "serve", "--model", str(model),
                                "--port", str(port), *extra], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               env=dict(os.environ, PYTHONPATH=str(ROOT)))
    base = f"http://127.0.0.1:{port}"
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"kfkd serve exited: {process.stderr.read().strip()}")
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                return process, base, time.perf_counter() - start
        except httpx.TransportError:
            time.sleep(0.05)


def stop(process):
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()


def rss_mb(pid) -> float:
    import psutil
    return psutil.Process(pid).memory_info().rss / 2 ** 20


def post(client, base, photo: Path):
    with photo.open("rb") as f:
        return client.post(base + "/v1/keypoints", files=[("images", (photo.name, f, "image/jpeg"))])


def load(base, pid, photos, clients, seconds):
    """Latencies (s) of the answered requests, errors, and the RSS samples (MiB)."""
    import httpx
    latencies, errors, memory = [], [], []
    stop_at = time.perf_counter() + seconds
    lock = threading.Lock()

    def client(number):
        with httpx.Client(timeout=120) as session:
            turn = number
            while time.perf_counter() < stop_at:
                start = time.perf_counter()
                try:
                    reply = post(session, base, photos[turn % len(photos)])
                    ok = reply.status_code == 200
                except httpx.HTTPError as exc:
                    ok, reply = False, exc
                with lock:
                    (latencies.append(time.perf_counter() - start) if ok
                     else errors.append(getattr(reply, "status_code", str(reply))))
                turn += 1

    def sample():
        while time.perf_counter() < stop_at:
            memory.append(rss_mb(pid))
            time.sleep(0.5)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    threads.append(threading.Thread(target=sample))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return np.array(latencies), errors, memory


def time_cli(model, photos, count, extra):
    """Seconds of one `kfkd predict` process on ``count`` photos, start-up included."""
    chosen = [str(photos[i % len(photos)]) for i in range(count)]
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "kfkd_kit", "predict", "--model", str(model),
                        "--out", str(Path(folder) / "k.csv"), *extra, *chosen], cwd=ROOT,
                       check=True, capture_output=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
        return time.perf_counter() - start


def cli_rates(model, photos, count, extra):
    """`kfkd predict`'s photos per second: on 2 x ``count`` photos with its start-up, and
    without it (the ``count`` photos more that the second run took, over the extra seconds)."""
    once, twice = time_cli(model, photos, count, extra), time_cli(model, photos, 2 * count, extra)
    return 2 * count / twice, count / max(twice - once, 1e-9)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--photos", nargs="+", type=Path, default=[ASTRONAUT])
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--cli-photos", type=int, default=50)
    p.add_argument("--detector", default="auto")
    p.add_argument("--trust", action="store_true")
    args = p.parse_args(argv)
    extra = ["--detector", args.detector] + (["--trust"] if args.trust else [])
    from kfkd_kit.utils.provenance import cpu_model
    process, base, ready = start_server(args.model, *extra)
    try:
        import httpx
        with httpx.Client(timeout=120) as session:     # a first answer: weights loaded, warm
            assert post(session, base, args.photos[0]).status_code == 200
        before = rss_mb(process.pid)
        latencies, errors, memory = load(base, process.pid, args.photos, args.clients, args.seconds)
        after = rss_mb(process.pid)
    finally:
        stop(process)
    served = len(latencies) / args.seconds
    cli, marginal = cli_rates(args.model, args.photos, args.cli_photos, extra)
    p50, p95, p99 = (np.percentile(latencies, q) * 1000 for q in (50, 95, 99))
    print(f"{cpu_model()}, {os.cpu_count()} cores; model {args.model}, detector {args.detector}; "
          f"{args.clients} clients for {args.seconds:g} s; server ready in {ready:.1f} s\n")
    print("| server photos/s | p50 ms | p95 ms | p99 ms | errors | RSS MiB start / end / peak "
          "| CLI photos/s (with start-up / without) | server/CLI (with / without) |")
    print("| ---: | ---: | ---: | ---: | ---: | --- | --- | --- |")
    print(f"| {served:.2f} | {p50:.0f} | {p95:.0f} | {p99:.0f} | {len(errors)} | "
          f"{before:.0f} / {after:.0f} / {max(memory + [after]):.0f} | {cli:.2f} / "
          f"{marginal:.2f} | {served / cli:.2f} / {served / marginal:.2f} |")
    if errors:
        print(f"\nerrors: {sorted(set(map(str, errors)))}")


if __name__ == "__main__":
    main()
