"""Frames per second of `kfkd predict clip.mp4`: a net8 through torch against the same net8
exported to ONNX through onnxruntime, on the same clip, measured in one run, alternately.

    python -m benchmarks.video_fps --model /tmp/v-net8.joblib [--frames 90] [--size 640x480]
        [--detectors haar,mtcnn] [--rounds 3] [--threads 2]

The clip is NASA's astronaut portrait (tests/fixtures/astronaut.jpg, public domain), its head
moving and growing across the frame, written with OpenCV (mp4v) into a temporary folder. The
model is copied there and exported there (`kfkd export`), so its own JSON is left alone. Each
round runs photo/video.py's ``predict_videos`` once per backend (in turn, the order flipped
every round), whole: reading the frames, detection, tracking, alignment and the net; the
net's own share is timed too. Best of the rounds (the machine may be shared). Prints a Markdown table for docs/RESULTS.md.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ASTRONAUT = ROOT / "tests" / "fixtures" / "astronaut.jpg"


def write_clip(path, frames, size, fps=30.0):
    """The astronaut's head (256x256 around it) moving and growing along a straight path."""
    import cv2
    from PIL import Image

    from kfkd_kit.photo import framing
    head = np.asarray(Image.open(ASTRONAUT).convert("RGB").crop((100, 0, 356, 256)))
    width, height = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for i in range(frames):
        f = i / max(1, frames - 1)
        s = height / 256 * (0.55 + 0.25 * f)
        T = np.array([[s, 0, 0.1 * width + 0.4 * width * f], [0, s, 0.05 * height]])
        frame = cv2.warpAffine(head, framing.pixel_matrix(T), size, flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=(90, 110, 130))
        writer.write(np.ascontiguousarray(frame[..., ::-1]))
    writer.release()
    return path


class Timed:
    """A keypoints backend that adds up the seconds spent in it."""

    def __init__(self, backend):
        self.backend, self.layout, self.seconds = backend, backend.layout, 0.0

    def __call__(self, crops):
        start = time.perf_counter()
        try:
            return self.backend(crops)
        finally:
            self.seconds += time.perf_counter() - start


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.video_fps", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="a saved net8 (.joblib with its JSON)")
    p.add_argument("--frames", type=int, default=90)
    p.add_argument("--size", default="640x480", help="WIDTHxHEIGHT (default: %(default)s)")
    p.add_argument("--detectors", default="haar,mtcnn")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--threads", type=int, default=2, help="torch's threads (default: 2)")
    args = p.parse_args(argv)
    import torch

    from kfkd_kit.meta.onnxexport import export_onnx
    from kfkd_kit.photo.align import SavedModel
    from kfkd_kit.photo.onnxmodel import OnnxKeypoints
    from kfkd_kit.photo.video import predict_videos
    from kfkd_kit.utils.modelfile import load_model
    from kfkd_kit.utils.provenance import machine
    from kfkd_kit.configs import inner_net

    from .bench.common import cpu_busy
    torch.set_num_threads(args.threads)
    busy = cpu_busy()
    size = tuple(int(v) for v in args.size.lower().split("x"))
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        model_path = folder / Path(args.model).name
        shutil.copy(args.model, model_path)
        shutil.copy(Path(args.model).with_suffix(".json"), model_path.with_suffix(".json"))
        onnx_path = export_onnx(model_path, say=lambda *a: None)
        clip = write_clip(folder / "clip.mp4", args.frames, size)
        model = load_model(model_path)
        precision = getattr(inner_net(model), "precision_", "fp32")
        backends = {"torch": SavedModel(model), "onnxruntime": OnnxKeypoints(onnx_path)}
        rows_out = []
        for detector in args.detectors.split(","):
            best = {}
            for round_ in range(args.rounds):
                # the order flips every round, so that a load that rises or falls over the
                # run favours neither backend
                for name in sorted(backends, reverse=bool(round_ % 2)):
                    backend = backends[name]
                    timed = Timed(backend)
                    start = time.perf_counter()
                    rows, summary = predict_videos([clip], timed, detector=detector)
                    took = time.perf_counter() - start
                    assert summary.frames == args.frames, summary.line()
                    if name not in best or took < best[name][0]:
                        best[name] = (took, timed.seconds, summary.faces)
            t_torch, n_torch, faces = best["torch"]
            t_ort, n_ort, _ = best["onnxruntime"]
            rows_out.append(
                f"| {detector} | {faces} / {args.frames} | {args.frames / t_torch:.2f} "
                f"({1000 * n_torch / args.frames:.1f} ms) | {args.frames / t_ort:.2f} "
                f"({1000 * n_ort / args.frames:.1f} ms) | **{t_torch / t_ort:.2f}×** | "
                f"{n_torch / n_ort:.2f}× |")
            print(rows_out[-1], flush=True)
    print()
    info = machine()
    print(f"Machine: {info['cpu']}, {info['cores']} cores, native bf16: "
          f"{info['native bf16'] or 'none'}; torch {info['torch']}, {args.threads} threads")
    print(f"Clip: {args.frames} frames, {size[0]}x{size[1]}, one face")
    print()
    print(f"torch's precision: {precision}; onnxruntime: fp32. CPUs {100 * busy:.0f}% busy "
          "(other processes) just before.")
    print()
    print("| detector | faces found | torch: frames/s (net's ms/frame) | onnxruntime: frames/s "
          "(net's ms/frame) | frames/s, onnxruntime / torch | the net alone, torch time / "
          "onnxruntime time |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    print("\n".join(rows_out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
