"""Each subpackage re-exports its public names from ``__init__`` with ``__all__``, and
resolves them lazily: reaching one utility does not import torch."""
import importlib
import inspect
import subprocess
import sys

import pytest

PACKAGES = ["kfkd_kit.utils", "kfkd_kit.data", "kfkd_kit.net", "kfkd_kit.meta",
            "kfkd_kit.search", "kfkd_kit.photo", "kfkd_kit.serve"]


@pytest.mark.parametrize("name", PACKAGES)
def test_every_exported_name_resolves_to_its_definition(name):
    package = importlib.import_module(name)
    assert package.__all__, name
    for public in package.__all__:
        value = getattr(package, public)
        if inspect.isclass(value) or inspect.isfunction(value):   # defined in the subpackage
            assert value.__module__.startswith(name + "."), (public, value.__module__)
    assert set(package.__all__) <= set(dir(package))


def test_unknown_name_is_an_attribute_error():
    import kfkd_kit.net
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        kfkd_kit.net.Nope


def test_star_import_gives_exactly_all():
    scope = {}
    exec("from kfkd_kit.meta import *", scope)
    import kfkd_kit.meta
    assert {k for k in scope if not k.startswith("__")} == set(kfkd_kit.meta.__all__)


def test_a_utility_does_not_import_torch():
    code = ("import sys, kfkd_kit.utils.atomic, kfkd_kit.utils; kfkd_kit.utils.write_json; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "False"
