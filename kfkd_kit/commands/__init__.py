"""The commands of `kfkd` (and the Makefile): one module per command.

Each command module has ``add_parser(subparsers)``, which declares its options, and
``run(args)``, which does the work and returns the exit status (None: 0). Commands build on
the estimator side (kfkd_kit's other modules) and on the private helpers here
(``_options``, ``_shared``, ``_plots``, ``_audit_figures``), never on one another
(tests/test_layout.py checks it). Heavy libraries are imported inside functions where
`kfkd predict` with an ONNX model must run without torch.

``COMMANDS`` is the one list of commands with their one-line help: `kfkd --help` shows it
without importing any command module (each imports torch, pandas or sklearn), and the
command the user runs is the only one imported (cli.py).
"""

# In the order of `kfkd --help`: module name -> one-line help.
COMMANDS = {
    "train": "train a named net; save model, JSON and PNGs",
    "submit": "write a Kaggle submission CSV from a saved model",
    "report": "error analysis of a saved model on held-out rows: RMSE per keypoint, worst "
              "faces, learning curves (HTML)",
    "download": "download and unpack the competition's files from Kaggle (the kaggle "
                "package) into the data folder",
    "cv": "k-fold cross-validation of a named net (RMSE px per fold), with its out-of-fold "
          "predictions",
    "stack": "stack cv runs: a meta-model per keypoint on their out-of-fold predictions, "
             "scored by nested CV, saved as one model",
    "grid": "GridSearchCV over learning rate x momentum",
    "zoo": "train every configuration, score on one held-out split, write a Markdown "
           "results table",
    "lrfind": "learning-rate range test: loss against an exponentially growing lr; plot, "
              "JSON and a suggested lr",
    "tune": "Optuna search over net8's width, dropout, augmentation, weight decay, lr and "
            "epochs (resumable, shareable)",
    "compare": "the saved models side by side, best validation RMSE first",
    "predict": "keypoints of the faces in your own photos: a CSV, and copies with the faces "
               "drawn",
    "serve": "a web page and a JSON API for keypoints on photos (FastAPI + uvicorn), on "
             "this machine",
    "export": "the fitted net as an ONNX graph (crop in, keypoints in pixels out), checked "
              "against torch",
    "audit": "a data audit without a net: duplicate images, labels that look wrong, images "
             "with no face, labelling groups (HTML); --clean writes a cleaned training file",
    "make_data": "write the built-in synthetic data set in Kaggle's layout",
}
NAMES = tuple(COMMANDS)


def command_name(module: str) -> str:
    """The name the user types: ``make_data`` -> ``make-data``."""
    return module.replace("_", "-")


def module_name(command: str) -> str | None:
    """The module of a typed command name, or None if there is no such command."""
    module = command.replace("-", "_")
    return module if module in COMMANDS and command == command_name(module) else None
