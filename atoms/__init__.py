"""The atom library: every capability a model can name, by name."""

from __future__ import annotations

from importlib import import_module
from types import ModuleType

ATOM_NAMES = (
    "precheck", "backup", "transfer_software", "install_software", "activate_software",
    "drain_traffic", "restore_traffic", "config_change", "confirm_commit", "dial_test",
    "billing_check", "kpi_check", "validate_upgrade", "rollback",
)


def load(name: str) -> ModuleType:
    if name not in ATOM_NAMES:
        from changeline.errors import InputError

        raise InputError(f"unknown atom '{name}' (known: {', '.join(ATOM_NAMES)})")
    return import_module(f"changeline.atoms.{name}")


def registry() -> dict[str, ModuleType]:
    return {name: load(name) for name in ATOM_NAMES}
