"""The atom library: every capability a model can name, by name.

Every module in this package is an atom (the engine's parts live in `changeline.engine`), so the
names are the package's modules rather than a hand-kept list that could drift from them.
"""

from __future__ import annotations

import pkgutil
from importlib import import_module
from types import ModuleType

ATOM_NAMES = tuple(sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")))


def load(name: str) -> ModuleType:
    if name not in ATOM_NAMES:
        from changeline.errors import InputError

        raise InputError(f"unknown atom '{name}' (known: {', '.join(ATOM_NAMES)})")
    return import_module(f"changeline.atoms.{name}")


def registry() -> dict[str, ModuleType]:
    return {name: load(name) for name in ATOM_NAMES}
