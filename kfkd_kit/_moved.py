"""Old import paths of modules that moved into subpackages, so that models saved before the
move (pickled .joblib files and .skops files name their classes' modules) still load, and
old scripts still import. ``MOVED`` is the one table; ``install()`` (run by the package's
``__init__``) puts a finder on ``sys.meta_path`` that serves each old name as its new
module itself, not a copy, so classes compare equal whichever name loaded them."""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

MOVED = {   # old module (what files saved before the move name) -> where it lives now
    "_atomic": "utils.atomic", "progress": "utils.progress", "provenance": "utils.provenance",
    "precision": "utils.precision", "malloc": "utils.malloc", "modelfile": "utils.modelfile",
    "runs": "utils.runs",
    "synthetic": "data.synthetic", "splits": "data.splits", "submission": "data.submission",
    "mirror": "data.mirror",
    "estimator": "net.estimator", "nets": "net.nets", "losses": "net.losses",
    "batches": "net.batches", "callbacks": "net.callbacks", "fastpath": "net.fastpath",
    "pipeline": "net.pipeline", "metrics": "net.metrics", "nested": "net.nested",
    "ensemble": "meta.ensemble", "tta": "meta.tta", "specialists": "meta.specialists",
    "selection": "search.selection",
    "faces": "photo.faces", "framing": "photo.framing", "photos": "photo.photos",
    "onnxmodel": "photo.onnxmodel",
}
PACKAGE = __name__.rsplit(".", 1)[0]


def new_path(dotted: str) -> str:
    """``kfkd_kit.estimator.KeypointNet`` -> ``kfkd_kit.net.estimator.KeypointNet``; any
    other name as it is."""
    prefix = PACKAGE + "."
    if not dotted.startswith(prefix):
        return dotted
    rest = dotted[len(prefix):]
    for old in sorted(MOVED, key=len, reverse=True):
        if rest == old or rest.startswith(old + "."):
            return prefix + MOVED[old] + rest[len(old):]
    return dotted


def old_paths(dotted: str) -> list:
    """The old names of a new dotted path (``kfkd_kit.net.nets.BNCNN`` ->
    [``kfkd_kit.nets.BNCNN``]); empty when it did not move."""
    prefix = PACKAGE + "."
    return [prefix + old + dotted[len(prefix + new):] for old, new in MOVED.items()
            if dotted.startswith(prefix + new + ".") or dotted == prefix + new]


class _OldPaths(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        if fullname.startswith(PACKAGE + ".") and fullname[len(PACKAGE) + 1:] in MOVED:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        return importlib.import_module(new_path(spec.name))

    def exec_module(self, module):
        pass                                   # the new module ran when it was imported


def install():
    if not any(isinstance(finder, _OldPaths) for finder in sys.meta_path):
        sys.meta_path.append(_OldPaths())
