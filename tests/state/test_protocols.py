"""Both backends satisfy the state store's Protocols member by member: every method with the
Protocol's parameters (names, kinds, defaults, annotations) and return annotation, every
attribute present on a live store of each backend. `isinstance` on a runtime-checkable
Protocol only checks that the names exist; this checks what a caller relies on."""

from __future__ import annotations

import inspect

import pytest

from changeline.state.api import Backups, StateStore
from changeline.state.backups import BackupStore, DatabaseBackups
from changeline.state.journal import Journal


def _members(protocol: type) -> tuple[list[str], list[str]]:
    methods = [n for n, v in vars(protocol).items() if not n.startswith("_") and inspect.isfunction(v)]
    return methods, [n for n in protocol.__annotations__ if not n.startswith("_")]


def _signature(fn) -> list[tuple]:
    sig = inspect.signature(fn)
    return [(p.name, p.kind, p.default, p.annotation) for p in sig.parameters.values()] + [sig.return_annotation]


@pytest.mark.parametrize("protocol, implementation", [(StateStore, Journal), (Backups, BackupStore),
                                                      (Backups, DatabaseBackups)],
                         ids=["journal", "file-backups", "database-backups"])
def test_every_method_of_the_protocol_has_its_signature(protocol, implementation):
    methods, _ = _members(protocol)
    assert methods  # the Protocol has methods to compare
    for name in methods:
        assert callable(getattr(implementation, name, None)), f"{implementation.__name__} lacks {name}"
        assert _signature(getattr(implementation, name)) == _signature(getattr(protocol, name)), \
            f"{implementation.__name__}.{name} differs from {protocol.__name__}.{name}"


def test_every_attribute_of_the_protocols_is_on_a_live_store_of_each_backend(database, tmp_path):
    stores = {StateStore: [Journal(database)], Backups: [DatabaseBackups(database), BackupStore(tmp_path / "b")]}
    for protocol, instances in stores.items():
        _, attributes = _members(protocol)
        assert attributes == ["location"]
        for store in instances:
            assert isinstance(store.location, str) and store.location, type(store).__name__
