"""The YANG modules an NE serves, and what a client uses to discover and fetch them:
the RFC 8525 YANG library, the RFC 6022 NETCONF monitoring state and `<get-schema>`.

Pure data and lxml, no I/O after loading: the module set is read once from the `yang/`
folder (the module files are the only source of names, revisions and namespaces), and
the state trees are built from it and from the engine's capabilities and locks.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from changeline.catalogue import YANG_DIR  # the contract's modules are catalogue data
from changeline.errors import ChangelineError

YANGLIB_NS = "urn:ietf:params:xml:ns:yang:ietf-yang-library"
DATASTORES_NS = "urn:ietf:params:xml:ns:yang:ietf-datastores"
MONITORING_NS = "urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"
MODULE_SET = "complete"  # one module set and one schema serve every datastore

# Modules the NE implements; every other module in yang/ is there because one of these
# imports it (import-only, RFC 8525 section 3). ietf-datastores is implemented because
# the library's datastore names are its identities.
IMPLEMENTED = ("changeline-ne", "ietf-netconf", "ietf-yang-library", "ietf-netconf-monitoring",
               "ietf-datastores")
_CAP = "urn:ietf:params:netconf:capability:"
# ietf-netconf's features (RFC 6241 appendix C) and the capability each stands for.
NETCONF_FEATURES = {
    "writable-running": _CAP + "writable-running:1.0",
    "candidate": _CAP + "candidate:1.0",
    "confirmed-commit": _CAP + "confirmed-commit:1.1",
    "rollback-on-error": _CAP + "rollback-on-error:1.0",
    "validate": _CAP + "validate:1.1",
    "startup": _CAP + "startup:1.0",
    "url": _CAP + "url:1.0",
    "xpath": _CAP + "xpath:1.0",
}


class YangModuleError(ChangelineError):
    """A module file in yang/ cannot be read as a module (name, namespace, revision)."""


@dataclass(frozen=True)
class YangModule:
    name: str
    revision: str
    namespace: str
    text: str
    implemented: bool
    features: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModuleSet:
    modules: tuple[YangModule, ...]

    @functools.cached_property
    def content_id(self) -> str:
        """Changes whenever the set changes (RFC 8525 content-id, RFC 7895 module-set-id):
        a digest of what a client caches, so equal sets on two NEs share one id."""
        digest = hashlib.sha256()
        for module in self.modules:
            digest.update(repr((module.name, module.revision, module.implemented,
                                module.features, module.text)).encode())
        return digest.hexdigest()[:16]

    def capabilities(self) -> list[str]:
        """What the hello adds for the library: RFC 8525/8526 `:yang-library:1.1` with the
        content-id, RFC 7950's `:yang-library:1.0` for clients of the RFC 7895 tree, and the
        monitoring module, a YANG 1.0 module, as a module capability (RFC 6022 section 2)."""
        library = self.revision_of("ietf-yang-library")
        monitoring = self.revision_of("ietf-netconf-monitoring")
        return [
            f"{_CAP}yang-library:1.0?revision={library}&module-set-id={self.content_id}",
            f"{_CAP}yang-library:1.1?revision={library}&content-id={self.content_id}",
            f"{MONITORING_NS}?module=ietf-netconf-monitoring&revision={monitoring}",
        ]

    def revision_of(self, name: str) -> str:
        [module] = [m for m in self.modules if m.name == name and m.implemented]
        return module.revision

    def find(self, identifier: str, version: str | None) -> list[YangModule]:
        return [m for m in self.modules
                if m.name == identifier and version in (None, "", m.revision)]


_STATEMENT = {
    "module": re.compile(r"^\s*module\s+([A-Za-z_][\w.-]*)\s*\{", re.M),
    "namespace": re.compile(r"^\s*namespace\s+\"?([^\";\s]+)\"?\s*;", re.M),
    "revision": re.compile(r"^\s*revision\s+\"?(\d{4}-\d{2}-\d{2})\"?", re.M),
}


def read_module(path: Path, *, features: Mapping[str, tuple[str, ...]] | None = None) -> YangModule:
    """A module's identity from its file; its revision is the latest revision statement's
    date (import statements' revision-date does not match)."""
    text = path.read_text(encoding="utf-8")
    found = {}
    for key, pattern in _STATEMENT.items():
        matches = pattern.findall(text)
        if not matches:
            raise YangModuleError(f"{path}: no {key} statement found")
        found[key] = max(matches) if key == "revision" else matches[0]
    name = found["module"]
    return YangModule(name=name, revision=found["revision"], namespace=found["namespace"], text=text,
                      implemented=name in IMPLEMENTED, features=(features or {}).get(name, ()))


def load_module_set(directory: Path, capabilities: Iterable[str]) -> ModuleSet:
    """Every module file in `directory`; ietf-netconf's features follow the capabilities
    the server advertises."""
    offered = set(capabilities)
    netconf = tuple(f for f, cap in NETCONF_FEATURES.items() if cap in offered)
    modules = [read_module(path, features={"ietf-netconf": netconf})
               for path in sorted(directory.glob("*.yang"))]
    missing = set(IMPLEMENTED) - {m.name for m in modules}
    if missing:
        raise YangModuleError(f"{directory}: no module file for {', '.join(sorted(missing))}")
    return ModuleSet(tuple(modules))


# --- state trees ---------------------------------------------------------------------------

def _leaf(parent: etree._Element, tag: str, text: str) -> etree._Element:
    child = etree.SubElement(parent, tag)
    child.text = text
    return child


def yang_library_element(modules: ModuleSet, datastores: Iterable[str]) -> etree._Element:
    """`/yang-library` (RFC 8525 section 3): one module set and schema for all datastores."""
    y = functools.partial("{{{}}}{}".format, YANGLIB_NS)
    root = etree.Element(y("yang-library"), nsmap={None: YANGLIB_NS})
    module_set = etree.SubElement(root, y("module-set"))
    _leaf(module_set, y("name"), MODULE_SET)
    for module in modules.modules:
        entry = etree.SubElement(module_set, y("module" if module.implemented
                                              else "import-only-module"))
        _leaf(entry, y("name"), module.name)
        _leaf(entry, y("revision"), module.revision)
        _leaf(entry, y("namespace"), module.namespace)
        for feature in module.features:
            _leaf(entry, y("feature"), feature)
    schema = etree.SubElement(root, y("schema"))
    _leaf(schema, y("name"), MODULE_SET)
    _leaf(schema, y("module-set"), MODULE_SET)
    for datastore in datastores:
        entry = etree.SubElement(root, y("datastore"))
        # An identityref: the prefix must be declared where the value is.
        name = etree.SubElement(entry, y("name"), nsmap={"ds": DATASTORES_NS})
        name.text = f"ds:{datastore}"
        _leaf(entry, y("schema"), MODULE_SET)
    _leaf(root, y("content-id"), modules.content_id)
    return root


def modules_state_element(modules: ModuleSet) -> etree._Element:
    """`/modules-state`, RFC 8525's deprecated copy of the RFC 7895 tree, still read by
    clients that predate NMDA."""
    y = functools.partial("{{{}}}{}".format, YANGLIB_NS)
    root = etree.Element(y("modules-state"), nsmap={None: YANGLIB_NS})
    _leaf(root, y("module-set-id"), modules.content_id)
    for module in modules.modules:
        entry = etree.SubElement(root, y("module"))
        _leaf(entry, y("name"), module.name)
        _leaf(entry, y("revision"), module.revision)
        _leaf(entry, y("namespace"), module.namespace)
        for feature in module.features:
            _leaf(entry, y("feature"), feature)
        _leaf(entry, y("conformance-type"), "implement" if module.implemented else "import")
    return root


def netconf_state_element(modules: ModuleSet, capabilities: Iterable[str],
                          datastores: Iterable[str],
                          locks: Mapping[str, tuple[int, str]]) -> etree._Element:
    """`/netconf-state` (RFC 6022): capabilities, datastores with their global locks
    (`locks` maps a datastore to (session id, yang:date-and-time locked)), and the schemas
    `<get-schema>` serves."""
    m = functools.partial("{{{}}}{}".format, MONITORING_NS)
    root = etree.Element(m("netconf-state"), nsmap={None: MONITORING_NS})
    caps = etree.SubElement(root, m("capabilities"))
    for capability in capabilities:
        _leaf(caps, m("capability"), capability)
    stores = etree.SubElement(root, m("datastores"))
    for datastore in datastores:
        entry = etree.SubElement(stores, m("datastore"))
        _leaf(entry, m("name"), datastore)
        if datastore in locks:
            session_id, locked_at = locks[datastore]
            lock = etree.SubElement(etree.SubElement(entry, m("locks")), m("global-lock"))
            _leaf(lock, m("locked-by-session"), str(session_id))
            _leaf(lock, m("locked-time"), locked_at)
    schemas = etree.SubElement(root, m("schemas"))
    for module in modules.modules:
        entry = etree.SubElement(schemas, m("schema"))
        _leaf(entry, m("identifier"), module.name)
        _leaf(entry, m("version"), module.revision)
        _leaf(entry, m("format"), "yang")  # ncm:yang; unprefixed = this default namespace
        _leaf(entry, m("namespace"), module.namespace)
        _leaf(entry, m("location"), "NETCONF")
    return root


class SchemaLookupError(ChangelineError):
    """A `<get-schema>` request names no single served schema (RFC 6022 section 3.1)."""

    def __init__(self, tag: str, message: str, app_tag: str | None = None) -> None:
        super().__init__(message)
        self.tag = tag
        self.app_tag = app_tag


def select_schema(modules: ModuleSet, identifier: str, version: str | None) -> YangModule:
    """The one module `<get-schema>` asks for: an unknown one is invalid-value; without a
    version, a module served in several revisions is operation-failed/data-not-unique."""
    found = modules.find(identifier, version)
    if not found:
        wanted = f"{identifier}@{version}" if version else identifier
        raise SchemaLookupError("invalid-value", f"no schema {wanted}")
    if len(found) > 1:
        revisions = ", ".join(m.revision for m in found)
        raise SchemaLookupError("operation-failed", f"{identifier} is served in revisions "
                                f"{revisions}: give a version", "data-not-unique")
    return found[0]


@functools.cache
def ne_module_set(capabilities: tuple[str, ...]) -> ModuleSet:
    """The simulator's modules, read once per process for a capability set (a thousand NEs
    share one copy of the texts)."""
    return load_module_set(YANG_DIR, capabilities)
