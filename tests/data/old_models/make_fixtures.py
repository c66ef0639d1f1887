"""Tiny models saved by the code as it stood before the package was grouped (commit 07bf19b),
for tests/test_old_models.py: `python tests/data/old_models/make_fixtures.py DIR` on that commit.
Do not rerun it on newer code: the point is that these files were written by the old layout."""
import json, sys
from pathlib import Path
import numpy as np
from kfkd_kit import configs
from kfkd_kit.synthetic import make_faces
from kfkd_kit.modelfile import save_model
from kfkd_kit.tta import flip_tta
from kfkd_kit.ensemble import SeedEnsemble
out = Path(sys.argv[1]); out.mkdir(parents=True, exist_ok=True)
X, y = make_faces(64, seed=0)
Xt, _ = make_faces(8, seed=1)
y[::3, 4:] = np.nan         # some rows with only the first points, as Kaggle's
common = dict(epochs=2, seed=0, device="cpu", verbose=0, precision="fp32")
tiny8 = dict(module__width=2, module__hidden=8)

def pipe(name, **kw):
    est = configs.build(name, **common)
    return est.set_params(**{("net__" + k): v for k, v in kw.items()})

models = {}
models["net1"] = pipe("net1", module__n_hidden=2)
models["net8"] = pipe("net8", **tiny8)
spec = configs.build("specialists", **common)
spec.set_params(estimator__net__module__filters=(2, 2, 2), estimator__net__module__dense=(4, 4))
models["specialists"] = spec
models["net8-pair"] = SeedEnsemble(pipe("net8", **tiny8), seeds=2, heads=["dense", "softargmax"], n_jobs=1)
expected = {}
for name, model in models.items():
    model.fit(X, y)
    save_model(model, out / f"{name}.joblib", {"fixture": name})
    if name in ("net1", "net8"):
        save_model(model, out / f"{name}-skops.skops", {"fixture": name})
    expected[name] = model.predict(Xt).tolist()
tta = flip_tta(models["net8"])
save_model(tta, out / "net8-tta.joblib", {"fixture": "net8-tta"})
expected["net8-tta"] = tta.predict(Xt).tolist()
(out / "expected.json").write_text(json.dumps(expected))
