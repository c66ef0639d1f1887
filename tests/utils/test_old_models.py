"""Models saved before the package was grouped into subpackages still load, from .joblib
and .skops, and predict the numbers they predicted when they were saved (the fixtures in
tests/fixtures/old_models were written by the old layout; make_fixtures.py there says how)."""
import json
from pathlib import Path

import numpy as np
import pytest

from kfkd_kit.data.synthetic import make_faces

OLD = Path(__file__).parents[1] / "fixtures" / "old_models"
EXPECTED = json.loads((OLD / "expected.json").read_text())
FILES = {"net1": "net1.joblib", "net1 skops": "net1-skops.skops", "net8": "net8.joblib",
         "net8 skops": "net8-skops.skops", "net8-pair": "net8-pair.joblib",
         "specialists": "specialists.joblib", "net8-tta": "net8-tta.joblib"}


@pytest.mark.parametrize("label", sorted(FILES))
def test_an_old_model_loads_and_predicts_as_it_did(label):
    from kfkd_kit.utils.modelfile import load_model
    model = load_model(OLD / FILES[label])          # its sha256 checked against its JSON
    images, _ = make_faces(8, seed=1)
    expected = np.asarray(EXPECTED[label.split()[0]], dtype=np.float32)
    np.testing.assert_allclose(model.predict(images), expected, rtol=0, atol=1e-4)
    # saved before the pixel convention was a setting: read as the 1-based one they were
    # trained under, by the nets and by predict's backend
    from kfkd_kit.keypoints import LEGACY_PIXEL_ORIGIN
    from kfkd_kit.net.estimator import pixel_origin_of
    from kfkd_kit.photo.align import SavedModel
    assert pixel_origin_of(model) == SavedModel(model).pixel_origin == LEGACY_PIXEL_ORIGIN == 1.0
    from sklearn.base import clone                 # and a refit trains under it again
    assert pixel_origin_of(clone(model), fitted=False) == 1.0
