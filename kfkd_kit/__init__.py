"""kfkd_kit: Kaggle's Facial Keypoints Detection on skorch + PyTorch + scikit-learn.

The package reads top to bottom (docs/ARCHITECTURE.md): ``utils`` and ``keypoints`` (the
competition's geometry) under everything; ``data`` (Kaggle's files, synthetic faces, splits,
submissions); ``net`` (the estimator, its torch modules, losses, batches and callbacks) and
``photo`` (faces in photos, the torch-free ONNX runner); ``meta`` (ensembles, specialists,
flip TTA); ``configs`` (the named nets and budget recipes, built in one pass); ``search``
(cross-validation, grid search, the lr finder, tune's study); then ``commands`` and ``cli``.
"""
from ._moved import install as _install_old_paths

__version__ = "0.2.0"

_install_old_paths()   # models saved before the subpackages name the old module paths
