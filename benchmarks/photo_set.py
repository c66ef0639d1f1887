"""A set of "photos" with known keypoints, made from Kaggle-style training faces, to measure
`kfkd predict`: detection rate, extra detections, and RMSE at the 96-px face scale against
the same model on the ideal 96x96 crops.

Each face of the model's own held-out validation rows (faces it never trained on) is
upscaled (x1.5 to x4), tilted (up to --max-tilt degrees) and shifted into a larger canvas
(1.6 to 2.6 times the face) over a smooth random background; every --pair-th canvas holds
two faces side by side. The true keypoints go through the same transform. Errors in
the photo are divided by the face's scale, so they are pixels of the 96x96 face.

    python -m benchmarks.photo_set --model models/net8.joblib --data data \
        [--faces 300] [--detector mtcnn] [--passes 4] [--out data/photo_set]
    python -m benchmarks.photo_set ... --calibrate   # Haar's HAAR_FRAME, from upright faces

The photos are written (PNG) under --out (keep it out of git: faces15 is for research use
only). Prints one table; nothing else is written.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from kfkd_kit import configs, data
from kfkd_kit.photo import framing
from kfkd_kit.keypoints import DEFAULT_PIXEL_ORIGIN, IMAGE_SIDE, pixel_centre


def paste(canvas, face, rng, scale, tilt, centre):
    """Warp the 96x96 ``face`` into ``canvas`` (float32, in place): p -> A (p - centre96) +
    centre, in framing's working coordinates (``framing.WORK_ORIGIN``); returns that map."""
    import cv2
    angle = np.deg2rad(tilt)
    A = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    middle = pixel_centre(framing.WORK_ORIGIN)
    T = np.concatenate([A, (np.asarray(centre) - A @ [middle, middle])[:, None]], 1)
    size = canvas.shape[::-1]
    M = framing.pixel_matrix(T)
    image = cv2.warpAffine(face.reshape(IMAGE_SIDE, IMAGE_SIDE).astype(np.float32), M, size,
                           flags=cv2.INTER_LINEAR)
    mask = cv2.warpAffine(np.ones((IMAGE_SIDE, IMAGE_SIDE), np.float32), M, size,
                          flags=cv2.INTER_LINEAR)
    canvas[:] = canvas * (1 - mask) + image * mask
    return T


def background(rng, height, width):
    import cv2
    kind = rng.integers(3)
    if kind == 0:                                   # smooth blobs
        small = rng.uniform(0, 255, (rng.integers(3, 9), rng.integers(3, 9))).astype(np.float32)
        return np.clip(cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC), 0, 255)
    if kind == 1:                                   # flat
        return np.full((height, width), rng.uniform(20, 235), np.float32)
    ramp = np.linspace(rng.uniform(0, 255), rng.uniform(0, 255), width, dtype=np.float32)
    noise = rng.normal(0, 6, (height, width)).astype(np.float32)
    return np.clip(ramp[None, :] + noise, 0, 255)


def make_set(X, y, out, seed=0, max_tilt=20.0, pair=5, backdrop=None,
             origin=DEFAULT_PIXEL_ORIGIN):
    """Write the canvases; returns the truth: one dict per face (file, rows' index, scale,
    keypoints in the photo, in the labels' pixel origin ``origin`` as ``y``'s).
    ``backdrop(rng, height, width)``: the canvas before the faces (default: ``background``'s
    smooth ones)."""
    from PIL import Image
    rng = np.random.default_rng(seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    truth, k, number = [], 0, 0
    while k < len(X):
        count = 2 if pair and number % pair == pair - 1 and k + 1 < len(X) else 1
        scales = rng.uniform(1.5, 4.0, count)
        sides = IMAGE_SIDE * scales
        width = int(sum(sides) * rng.uniform(1.6, 2.6) / (1 if count == 1 else 1.3))
        height = int(sides.max() * rng.uniform(1.6, 2.6))
        canvas = (backdrop or background)(rng, height, width)
        slot = width / count
        name = f"photo{number:04d}.png"
        for j in range(count):
            margin = sides[j] * 0.75
            cx = slot * j + rng.uniform(min(margin, slot / 2), max(slot - margin, slot / 2))
            cy = rng.uniform(min(margin, height / 2), max(height - margin, height / 2))
            tilt = rng.uniform(-max_tilt, max_tilt)
            T = paste(canvas, X[k], rng, scales[j], tilt, (cx, cy))
            truth.append({"file": str(out / name), "row": k, "scale": scales[j], "tilt": tilt,
                          "T": T, "keypoints": framing.from_work(framing.apply(
                              T, framing.points(framing.to_work(y[k], origin))).reshape(-1), origin)})
            k += 1
        Image.fromarray(np.clip(np.round(canvas), 0, 255).astype(np.uint8)).save(out / name)
        number += 1
    return truth


def match(truth, rows):
    """Pair each true face with the detection whose box holds its eyes' and nose's centre."""
    by_file = {}
    for row in rows:
        by_file.setdefault(row["image"], []).append(row)
    pairs, used = [], set()
    for face in truth:
        centre = np.nanmean(framing.points(face["keypoints"])[[0, 1, 10]], axis=0)
        hit = None
        for row in by_file.get(face["file"], []):
            x, y, w, h = (row[c] for c in ("x", "y", "w", "h"))
            if x <= centre[0] <= x + w and y <= centre[1] <= y + h and id(row) not in used:
                hit = row
                break
        if hit is not None:
            used.add(id(hit))
        pairs.append((face, hit))
    extra = sum(1 for row in rows if id(row) not in used)
    return pairs, extra


def rmse96(pairs, key):
    errors = []
    for face, row in pairs:
        if row is None:
            continue
        predicted = np.asarray(key(row), dtype=float)
        errors.append((predicted - face["keypoints"]) / face["scale"])
    errors = np.concatenate(errors)
    return float(np.sqrt(np.nanmean(errors ** 2)))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--data", default="data")
    p.add_argument("--faces", type=int, default=300)
    p.add_argument("--detector", default="mtcnn")
    p.add_argument("--passes", type=int, default=4)
    p.add_argument("--max-tilt", type=float, default=20.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="data/photo_set")
    p.add_argument("--calibrate", action="store_true",
                   help="upright faces; print Haar's frame relative to its box (HAAR_FRAME)")
    p.add_argument("--trust-model", action="store_true")
    p.add_argument("--mtcnn-threshold", type=float, default=None,
                   help="MTCNN's final-stage probability a face must reach "
                        "(default: faces.MTCNN_THRESHOLD)")
    args = p.parse_args(argv)

    from kfkd_kit.photo import faces
    from kfkd_kit.utils.modelfile import load_model
    from kfkd_kit.photo.align import SavedModel, predict_photos
    if args.mtcnn_threshold is not None:
        faces.MTCNN_THRESHOLD = args.mtcnn_threshold
    model = load_model(args.model, trust=args.trust_model)
    training = data.load_training(args.data)
    held = configs.inner_net(model).validation_rows(training.X, training.y)
    if held is None:
        raise SystemExit("the model holds out no validation rows; train it with a split")
    held = held[:args.faces]
    X, y = training.X[held], training.y[held]
    from kfkd_kit.net.estimator import pixel_origin_of
    origin = pixel_origin_of(model)
    keypoints = SavedModel(model, pixel_origin=origin)
    if keypoints.layout is None:
        keypoints.layout = framing.mean_layout(training.y)
    ideal = model.predict(X)
    ideal_rmse = float(np.sqrt(np.nanmean((ideal - y) ** 2)))
    out = Path(args.out) / ("upright" if args.calibrate else f"tilt{args.max_tilt:g}-seed{args.seed}")
    truth = make_set(X, y, out, seed=args.seed, max_tilt=0.0 if args.calibrate else args.max_tilt,
                     origin=origin)
    files = list(dict.fromkeys(face["file"] for face in truth))
    start = time.perf_counter()
    rows, summary = predict_photos(files, keypoints, detector=args.detector, passes=args.passes,
                                   record_passes=True)
    seconds = time.perf_counter() - start
    pairs, extra = match(truth, rows)
    found = sum(row is not None for _, row in pairs)
    print(f"model {args.model}; {len(truth)} held-out faces in {len(files)} photos ({out}); "
          f"detector {args.detector} (MTCNN threshold {faces.MTCNN_THRESHOLD}); {seconds:.1f} s")
    print(f"found {found}/{len(truth)} ({100 * found / len(truth):.1f}%), extra detections "
          f"{extra} ({100 * extra / len(truth):.1f}%); {summary.line()}")
    print(f"ideal 96x96 crops: RMSE {ideal_rmse:.3f} px")
    layout = framing.points(framing.to_work(keypoints.layout, origin))
    first = rmse96(pairs, lambda r: framing.from_work(framing.apply(
        framing.invert(r["first"]), layout).reshape(-1), origin)) \
        if all(r is None or "first" in r for _, r in pairs) else None
    if first is not None:
        print(f"first crop + mean layout: RMSE {first:.3f} px")
    for number in range(args.passes):
        value = rmse96(pairs, lambda r: r["passes"][number])
        print(f"pass {number + 1}: RMSE {value:.3f} px ({value / ideal_rmse:.3f} x ideal)")
    if args.calibrate:
        frames = []
        for face, row in pairs:
            if row is None:
                continue
            corner = framing.from_work(framing.apply(face["T"], np.array([0.5, 0.5])), origin)
            side = IMAGE_SIDE * face["scale"]
            frames.append([(corner[0] - row["x"]) / row["w"], (corner[1] - row["y"]) / row["w"],
                           side / row["w"]])
        frames = np.array(frames)
        print("frame relative to the box (u, v, k): median",
              np.round(np.median(frames, axis=0), 3).tolist(), "IQR",
              np.round(np.subtract(*np.percentile(frames, [75, 25], axis=0)), 3).tolist())


if __name__ == "__main__":
    main()
