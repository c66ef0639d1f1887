"""i. `kfkd predict`: net8's keypoints for a batch of face crops, faces per second through
onnxruntime (the exported graph) against torch (the fitted net, in its own precision); face
detection per photo (MTCNN, Haar) and alignment per face timed separately.
"""
from __future__ import annotations

import time
from pathlib import Path

from .common import ROOT, faces


def run(table, opts):
    """h: predict's three stages on this CPU: detection, alignment, the net (torch vs ORT)."""
    quick = opts.quick
    import tempfile

    from kfkd_kit import configs
    from kfkd_kit.photo import framing
    from kfkd_kit.meta.onnxexport import export_onnx
    from kfkd_kit.photo.onnxgraph import check_batch
    from kfkd_kit.photo.onnxmodel import OnnxKeypoints
    from kfkd_kit.photo.faces import make_detector
    from kfkd_kit.utils.modelfile import load_model, save_model
    from kfkd_kit.photo.photos import read_photo
    from kfkd_kit.photo.align import SavedModel
    print("i. predict: detection, alignment, net8 through torch and onnxruntime", flush=True)
    n, rounds = (128, 2) if quick else (512, 3)
    images, points = faces(256)
    model = configs.build("net8", epochs=1, device="cpu", verbose=0).fit(images, points)
    framing.attach_layout(model, points)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "net8.joblib"
        save_model(model, path, {"net": "net8"})
        onnx_path = export_onnx(path, say=lambda *a: None)
        backends = {"torch": SavedModel(load_model(path)), "onnxruntime": OnnxKeypoints(onnx_path)}
        crops = check_batch(n)
        best = {}
        for _ in range(rounds):
            for name, backend in backends.items():
                start = time.perf_counter()
                backend(crops)
                took = time.perf_counter() - start
                best[name] = min(best.get(name, took), took)
    torch_fps, ort_fps = n / best["torch"], n / best["onnxruntime"]
    precision = getattr(configs.inner_net(model), "precision_", "fp32")
    table.add(f"net8 keypoints for {n} face crops, faces/s, onnxruntime (fp32) vs torch "
              f"({precision})", ort_fps, torch_fps, ort_fps / torch_fps)
    photo = read_photo(ROOT / "tests" / "fixtures" / "astronaut.jpg")
    for detector in ("mtcnn", "haar"):
        find = make_detector(detector, 40)
        find(photo)                                               # load, warm up
        seconds = []
        for _ in range(rounds + 2):
            start = time.perf_counter()
            found = find(photo)
            seconds.append(time.perf_counter() - start)
        table.add(f"face detection ({detector}), 512x512 photo, ms per photo",
                  1000 * min(seconds))
    face = make_detector("haar", 40)(photo)[0]
    layout = framing.mean_layout(points)
    first = make_detector("haar", 40).first_crop(face, layout)
    seconds = []
    for _ in range(rounds + 2):
        start = time.perf_counter()
        for _ in range(50):
            patch = framing.FacePatch(photo.grey, first)
            patch.crop(first)
        seconds.append((time.perf_counter() - start) / 50)
    table.add("alignment: a face's patch and one 96x96 crop, ms per face", 1000 * min(seconds))
    table.note(f"Faces per second of the net alone, on {n} crops (best of {rounds}); a face "
               "costs one net pass per crop (--passes). Detection is per photo, on the 512x512 "
               f"astronaut ({len(found)} face); the first detection loads the detector and is "
               "not counted.")
