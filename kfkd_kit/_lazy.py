"""Re-exports for a subpackage's ``__init__`` that import their module on first use.

``from kfkd_kit.net import KeypointNet`` works, yet ``import kfkd_kit.utils.atomic`` does
not pull torch in through a sibling: a subpackage's public names are listed once, in its
``__init__``'s ``EXPORTS`` (module -> names), and resolved by PEP 562's ``__getattr__``.
"""
from __future__ import annotations

import importlib


def exports(package: str, table: dict[str, tuple[str, ...]]):
    """(``__all__``, ``__getattr__``, ``__dir__``) for ``package`` re-exporting ``table``:
    each public name from the submodule that defines it."""
    home = {name: module for module, names in table.items() for name in names}
    names = sorted(home)

    def __getattr__(name):
        if name not in home:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{home[name]}"), name)
        globals_of(package)[name] = value   # once imported, an attribute like any other
        return value

    def __dir__():
        return sorted(set(globals_of(package)) | set(names))

    return names, __getattr__, __dir__


def globals_of(package: str) -> dict:
    return vars(importlib.import_module(package))
