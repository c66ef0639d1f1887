"""Predict keypoints for a CSV of images with a saved model, as in your own scripts.

    python examples/predict_keypoints.py models/net1.joblib data/test.csv keypoints.csv

The CSV is in the layout of Kaggle's test.csv (``ImageId,Image``, Image = 9216
space-separated grey levels); the output has ImageId and the 30 keypoint columns in pixels.
Nothing from the training run is needed but the model file and the JSON beside it, whose
sha256 the model is checked against before it is loaded (a .joblib file is a pickle and runs
code when loaded).
"""
import sys

import pandas as pd

from kfkd_kit.data import load_test
from kfkd_kit.keypoints import FEATURE_NAMES
from kfkd_kit.utils.modelfile import load_model


def main(model_path, images_csv, out_csv):
    model = load_model(model_path)            # sha256-checked; the whole fitted sklearn Pipeline
    images = load_test(images_csv)            # uint8 (n, 9216) + ImageIds
    keypoints = model.predict(images.X)       # (n, 30) in pixels
    table = pd.DataFrame(keypoints, columns=list(FEATURE_NAMES))
    table.insert(0, "ImageId", images.image_ids)
    table.to_csv(out_csv, index=False, float_format="%.4f")
    print(f"{len(table)} images -> {out_csv}")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
