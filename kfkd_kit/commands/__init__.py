"""The commands of `kfkd` (and the Makefile): one module per command.

Each command module has ``add_parser(subparsers)``, which declares its options, and
``run(args)``, which does the work and returns the exit status (None: 0). Commands build on
the estimator side (kfkd_kit's other modules) and on the private helpers here
(``_options``, ``_shared``, ``_plots``, ``_kaggle``), never on one another
(tests/test_layout.py checks it). Heavy libraries are imported inside functions where
`kfkd predict` with an ONNX model must run without torch.
"""

# In the order of `kfkd --help`.
NAMES = ("train", "submit", "report", "download", "cv", "grid", "zoo", "lrfind", "tune",
         "compare", "predict", "export", "make_data")
