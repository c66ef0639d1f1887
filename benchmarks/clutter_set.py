"""False boxes and found faces with real clutter: benchmarks/photo_set.py's held-out faces
pasted onto textured photos (scikit-image's data images: brick, grass, gravel, coffee, a cat,
a rocket, coins, ...) plus those photos alone, with no face (colour, as shipped, and
enlarged x1.6). Detectors, and filters on each face found, compared on the same photos:

- ``score``: the detector's score (MTCNN's final probability) at several thresholds;
- ``misfit``: the RMS distance (px of the 96x96 crop) from the net's keypoints in the last
  crop to the mean layout, after the similarity that fits them best;
- ``flip``: the RMS distance between the net's keypoints in the last crop and those of its
  mirror image, mirrored back (the net's flip consistency).

    pip install scikit-image    # the benchmark's only extra (pip install -e .[bench])
    python -m benchmarks.clutter_set --model models/net8.joblib --data data \\
        [--onnx models/net8.onnx] [--runs torch:mtcnn:centre,onnx:haar,onnx:mtcnn] \\
        [--threshold 0.6] [--faces 300] [--seed 0] [--out /tmp/clutter]

Faces15 is for research use only: the photos go under --out (keep it out of git). Prints
one Markdown table: detector, filter, faces found, false boxes, RMSE at the 96-px scale.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from benchmarks.photo_set import make_set, match, rmse96

# scikit-image's data images with no face in them (camera and astronaut have one)
FACELESS = ("coffee", "chelsea", "rocket", "coins", "brick", "grass", "gravel", "moon",
            "hubble_deep_field", "immunohistochemistry", "page", "text", "clock", "retina",
            "colorwheel", "logo")
TEXTURES = ("brick", "grass", "gravel", "coffee", "chelsea", "rocket", "coins", "moon",
            "hubble_deep_field", "immunohistochemistry", "clock")


def _grey(image):
    image = np.asarray(image)
    if image.dtype == bool:
        image = image * 255
    if image.ndim == 3:
        image = image[..., :3] @ np.array([0.299, 0.587, 0.114])
    return image.astype(np.float32)


def textures():
    import skimage.data
    return [_grey(getattr(skimage.data, name)()) for name in TEXTURES]


def textured(images):
    """A backdrop for make_set: a random texture, cut and resized to the canvas."""
    import cv2

    def backdrop(rng, height, width):
        image = images[rng.integers(len(images))]
        side = rng.uniform(0.5, 1.0)
        h, w = max(8, int(image.shape[0] * side)), max(8, int(image.shape[1] * side))
        y0, x0 = rng.integers(image.shape[0] - h + 1), rng.integers(image.shape[1] - w + 1)
        return cv2.resize(image[y0:y0 + h, x0:x0 + w], (width, height),
                          interpolation=cv2.INTER_LINEAR)
    return backdrop


def faceless_photos(out):
    """The face-free images as photos: each as shipped and enlarged x1.6."""
    import skimage.data
    from PIL import Image
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for name in FACELESS:
        image = np.asarray(getattr(skimage.data, name)())
        if image.dtype == bool:
            image = (image * 255).astype(np.uint8)
        image = Image.fromarray(image[..., :3] if image.ndim == 3 else image)
        for factor in (1.0, 1.6):
            copy = image.resize((round(image.width * factor), round(image.height * factor)),
                                Image.BICUBIC) if factor != 1 else image
            files.append(out / f"{name}-x{factor:g}.png")
            copy.save(files[-1])
    return files


def measures(rows, keypoints, layout, mirror_sum):
    """Each row's misfit and flip (see the module's docstring), in place."""
    from kfkd_kit.keypoints import mirror_targets
    from kfkd_kit.photo import framing
    from kfkd_kit.photo.photos import read_photo
    target = framing.points(layout)
    greys = {}
    crops = []
    for row in rows:
        if row["image"] not in greys:
            greys[row["image"]] = read_photo(row["image"]).grey
        crops.append(framing.warp_to_crop(greys[row["image"]], row["last"]))
    if not rows:
        return
    crops = np.stack(crops).astype(np.float32)
    plain = keypoints(crops)
    mirrored = mirror_targets(keypoints(crops[..., ::-1].copy()), axis=mirror_sum / 2)
    for row, p, q in zip(rows, plain, mirrored):
        points = framing.points(p)
        fitted = framing.apply(framing.fit_similarity(points, target), points)
        row["misfit"] = float(np.sqrt(np.mean((fitted - target) ** 2)))
        row["flip"] = float(np.sqrt(np.mean((p - q) ** 2)))


def evaluate(truth, rows, keep):
    kept = [row for row in rows if keep(row)]
    pairs, extra = match(truth, kept)
    found = sum(row is not None for _, row in pairs)
    rmse = rmse96(pairs, lambda r: r["passes"][-1]) if found else float("nan")
    return found, extra, rmse


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--onnx", default=None, help="the model exported (kfkd export), for onnx runs")
    p.add_argument("--data", default="data")
    p.add_argument("--faces", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="/tmp/clutter")
    p.add_argument("--runs", default="torch:mtcnn,torch:haar",
                   help="comma-separated BACKEND:DETECTOR[:MERGE] runs: BACKEND torch (--model) or "
                        "onnx (--onnx, with the MTCNN nets exported beside it), DETECTOR mtcnn or "
                        "haar, MERGE how MTCNN's turns merge (nms or centre; default: "
                        "faces.MTCNN_MERGE)")
    p.add_argument("--threshold", type=float, default=None,
                   help="MTCNN's final threshold for the runs (default: faces.MTCNN_THRESHOLD); "
                        "the filters sweep above it")
    args = p.parse_args(argv)

    from kfkd_kit import configs, data
    from kfkd_kit.meta.tta import flip_tta
    from kfkd_kit.photo import faces, framing
    from kfkd_kit.photo.align import SavedModel, predict_photos
    from kfkd_kit.photo.onnxgraph import mirror_sum_of
    from kfkd_kit.utils.modelfile import load_model
    from kfkd_kit.utils.provenance import describe_machine
    model = load_model(args.model)
    training = data.load_training(args.data)
    held = configs.inner_net(model).validation_rows(training.X, training.y)[:args.faces]
    X, y = training.X[held], training.y[held]
    ideal = float(np.sqrt(np.nanmean((model.predict(X) - y) ** 2)))
    out = Path(args.out)
    truth = make_set(X, y, out / f"faces-seed{args.seed}", seed=args.seed,
                     backdrop=textured(textures()))
    files = list(dict.fromkeys(face["file"] for face in truth)) + faceless_photos(out / "faceless")
    mirror_sum = mirror_sum_of(model, flip_tta(model))
    backends = []
    onnx = None
    for run in args.runs.split(","):
        backend, name, merge = (run.split(":") + [""])[:3]
        if backend == "onnx":
            from kfkd_kit.photo.onnxmodel import OnnxKeypoints
            onnx = onnx or OnnxKeypoints(args.onnx)
            keypoints, detector = onnx, (onnx.detector(40) if name == "mtcnn" else name)
        else:
            keypoints, detector = SavedModel(model), name
        label = f"{name} ({backend}{', turns merged by ' + merge if merge else ''})"
        backends.append((label, keypoints, detector, merge))
    print(f"{len(truth)} held-out faces in {len(files) - 2 * len(FACELESS)} textured photos, "
          f"{2 * len(FACELESS)} photos with no face; ideal 96x96 crops RMSE {ideal:.3f} px; "
          f"{describe_machine()}\n")
    print("| detector | filter | faces found | false boxes | RMSE px (96-px scale) | s |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    default_merge = faces.MTCNN_MERGE
    for label, keypoints, detector, merge in backends:
        if merge:
            faces.MTCNN_MERGE = merge
        start = time.perf_counter()
        threshold = faces.MTCNN_THRESHOLD
        if args.threshold is not None:
            faces.MTCNN_THRESHOLD = args.threshold
        try:
            rows, _ = predict_photos(files, keypoints, detector=detector, record_passes=True)
        finally:
            faces.MTCNN_MERGE, faces.MTCNN_THRESHOLD = default_merge, threshold
        seconds = time.perf_counter() - start
        measures(rows, keypoints, keypoints.layout if keypoints.layout is not None
                 else framing.layout_of(model), mirror_sum)
        filters = [("none", lambda r: True)]
        if "mtcnn" in label:
            filters = [(f"score >= {t:g}", lambda r, t=t: r["score"] >= t)
                       for t in (0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995)]
        base = list(filters)
        for name, keep in base[:1]:
            for m in (4.0, 5.0, 6.0, 8.0):
                filters.append((f"{name}, misfit <= {m:g}",
                                lambda r, keep=keep, m=m: keep(r) and r["misfit"] <= m))
            for f in (2.0, 3.0, 4.0, 6.0):
                filters.append((f"{name}, flip <= {f:g}",
                                lambda r, keep=keep, f=f: keep(r) and r["flip"] <= f))
        for name, keep in filters:
            found, extra, rmse = evaluate(truth, rows, keep)
            print(f"| {label} | {name} | {found}/{len(truth)} ({100 * found / len(truth):.1f}%) "
                  f"| {extra} | {rmse:.3f} | {seconds:.0f} |")
        hits = {id(h) for _, h in match(truth, rows)[0] if h is not None}
        false = [r for r in rows if id(r) not in hits]
        true = sorted(r["score"] for r in rows if id(r) in hits)
        print(f"<!-- {label}: the lowest scores of true faces: {np.round(true[:8], 4).tolist()} -->")
        for key in ("misfit", "flip"):
            values = [r[key] for r in rows if id(r) in hits]
            print(f"<!-- {label}: true faces' {key} percentiles 50/90/99/max: "
                  f"{np.round(np.percentile(values, [50, 90, 99, 100]), 2).tolist()} -->")
        if false:
            false = sorted(false, key=lambda r: -r["score"])[:40]
            print(f"<!-- {label}: false boxes' score/misfit/flip: "
                  + "; ".join(f"{r['score']:.3f}/{r['misfit']:.1f}/{r['flip']:.1f} "
                              f"{Path(r['image']).name}" for r in false) + " -->")


if __name__ == "__main__":
    main()
