"""Configuration tree logic of NETCONF datastores (RFC 6241 edit-config, subtree filters): pure lxml, no I/O.

The simulator serves its datastores with it and plans predict config diffs with it.

The simulator has no YANG engine, so the data model is read from the data itself:
- a leaf is an element without element children; its value is its stripped text;
- a list entry is an element with a `<name>` child (its key) below the top level; the
  top-level nodes of a datastore (`<ne>`) are containers even though they carry a name;
- everything else is a container.
Data is attribute-free; stored trees are kept in a canonical form (default namespace
declarations, no blank text, stripped leaf values) so equal trees serialize identically.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Iterator

from lxml import etree

from changeline.errors import ChangelineError

NC_NS = "urn:ietf:params:xml:ns:netconf:base:1.0"
CONFIG_TAG = f"{{{NC_NS}}}config"
OPERATION_ATTR = f"{{{NC_NS}}}operation"
EDIT_OPERATIONS = ("merge", "replace", "create", "delete", "remove")
DEFAULT_OPERATIONS = ("merge", "replace", "none")
KEY_LEAF = "name"


class DataError(ChangelineError):
    """One problem with configuration data, in NETCONF terms (an `<rpc-error>` to be)."""

    def __init__(self, tag: str, message: str, *, node: etree._Element | None = None,
                 app_tag: str | None = None, error_type: str = "application",
                 info: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.tag = tag
        self.app_tag = app_tag
        self.error_type = error_type
        self.info = info or {}
        self.path, self.path_namespaces = instance_path(node) if node is not None else (None, {})


# --- canonical form -------------------------------------------------------------------

def canonical(tree: etree._Element) -> etree._Element:
    """A canonical copy of `tree` (any root tag)."""
    return _canonical_copy(tree, None)


def config_root(children: Iterable[etree._Element] = ()) -> etree._Element:
    """A datastore root `<config>` holding canonical copies of `children`."""
    root = etree.Element(CONFIG_TAG, nsmap={None: NC_NS})
    for child in children:
        _canonical_copy(child, root)
    return root


def serialize(tree: etree._Element) -> bytes:
    """Pretty-printed canonical bytes: equal trees give identical bytes."""
    return etree.tostring(canonical(tree), pretty_print=True, encoding="UTF-8")


def elements(parent: etree._Element) -> Iterator[etree._Element]:
    """Element children only (comments and processing instructions are not data)."""
    return (child for child in parent if isinstance(child.tag, str))


def _canonical_copy(node: etree._Element, parent: etree._Element | None) -> etree._Element:
    children = list(elements(node))
    copied = _new_element(node.tag, parent, None if children else _value_prefix(node))
    for child in children:
        _canonical_copy(child, copied)
    if not children:
        copied.text = _value(node) or None
    return copied


def _value_prefix(leaf: etree._Element) -> dict[str, str] | None:
    """The declaration a leaf's value needs: an identityref such as `ds:running` means
    nothing once its prefix is no longer bound (RFC 7950 section 9.10.3)."""
    prefix, colon, _ = _value(leaf).partition(":")
    namespace = leaf.nsmap.get(prefix) if colon and prefix else None
    return {prefix: namespace} if namespace else None


def _new_element(tag: str, parent: etree._Element | None,
                 value_prefix: dict[str, str] | None = None) -> etree._Element:
    # Declare a namespace as the default where it starts, as NETCONF servers print it,
    # instead of the generated `ns0:` prefixes lxml would invent.
    namespace = etree.QName(tag).namespace
    parent_namespace = etree.QName(parent).namespace if parent is not None else None
    nsmap = {None: namespace} if namespace and namespace != parent_namespace else None
    if value_prefix:
        nsmap = {**(nsmap or {}), **value_prefix}
    if parent is None:
        return etree.Element(tag, nsmap=nsmap)
    return etree.SubElement(parent, tag, nsmap=nsmap)


def _value(node: etree._Element) -> str:
    return (node.text or "").strip()


def _is_leaf(node: etree._Element) -> bool:
    return next(elements(node), None) is None


# --- identity of nodes ----------------------------------------------------------------

def _key(node: etree._Element) -> str | None:
    namespace = etree.QName(node).namespace
    key = node.find(f"{{{namespace}}}{KEY_LEAF}" if namespace else KEY_LEAF)
    return None if key is None else _value(key)


def _is_top_level(node: etree._Element) -> bool:
    parent = node.getparent()
    return parent is None or etree.QName(parent).namespace == NC_NS


def instance_path(node: etree._Element) -> tuple[str, dict[str, str]]:
    """The `error-path` of a data node, e.g. `/changeline-ne:ne/changeline-ne:timers/
    changeline-ne:timer[changeline-ne:name='t3512']`, and the prefixes it uses. The path
    stops at the first NETCONF-namespace ancestor (`<config>`, `<data>`)."""
    steps: list[etree._Element] = []
    current: etree._Element | None = node
    while current is not None and etree.QName(current).namespace != NC_NS:
        steps.append(current)
        current = current.getparent()
    prefixes: dict[str, str] = {}
    parts = []
    for step in reversed(steps):
        qname = etree.QName(step)
        prefix = _prefix_for(qname.namespace, prefixes)
        part = f"{prefix}{qname.localname}"
        key = None if _is_top_level(step) else _key(step)
        if key is not None:
            quote = '"' if "'" in key else "'"
            part += f"[{prefix}{KEY_LEAF}={quote}{key}{quote}]"
        parts.append(part)
    return "/" + "/".join(parts), {p: ns for ns, p in prefixes.items()}


def _prefix_for(namespace: str | None, prefixes: dict[str, str]) -> str:
    """`prefix:` for a namespace, derived from the URI's last segment (readable and stable)."""
    if not namespace:
        return ""
    if namespace not in prefixes:
        base = re.sub(r"[^A-Za-z0-9_.-]", "", re.split(r"[:/]", namespace.rstrip(":/"))[-1])
        base = base if re.match(r"[A-Za-z_]", base) else "ns"
        prefix, n = base, 1
        while prefix in prefixes.values():
            n += 1
            prefix = f"{base}{n}"
        prefixes[namespace] = prefix
    return prefixes[namespace] + ":"


# --- structure checks -----------------------------------------------------------------

def check_structure(root: etree._Element) -> list[DataError]:
    """Problems any datastore content must not have, whatever the NE type: mixed content,
    empty list keys, duplicate siblings (same name and key)."""
    problems = _duplicates(list(elements(root)))
    for node in root.iterdescendants():
        if not isinstance(node.tag, str):
            continue
        children = list(elements(node))
        if children and _value(node):
            problems.append(DataError("bad-element", "element has both a value and children",
                                      node=node, info={"bad-element": etree.QName(node).localname}))
        if not _is_top_level(node) and _key(node) == "":
            problems.append(DataError("invalid-value", f"list key '{KEY_LEAF}' is empty",
                                      node=node))
        problems.extend(_duplicates(children))
    return problems


def _duplicates(siblings: list[etree._Element]) -> list[DataError]:
    seen: set[tuple[str, str | None]] = set()
    problems = []
    for node in siblings:
        identity = _identity(node)
        if identity in seen:
            problems.append(DataError("operation-failed", "duplicate data node", node=node,
                                      app_tag="data-not-unique"))
        seen.add(identity)
    return problems


# --- edit-config ----------------------------------------------------------------------

class _StopEditing(Exception):
    """Unwinds the edit at the first error under stop-on-error."""


def apply_edit(target: etree._Element, config: etree._Element, *,
               default_operation: str = "merge", stop_on_error: bool = True) -> list[DataError]:
    """Apply the `<config>` of an edit-config to the datastore root `target`, in place.

    Returns the errors (empty on success). With `stop_on_error` the edit ends at the first
    error and what was applied before it stays applied, as RFC 6241 says; otherwise every
    node that can be applied is, and all errors are returned. Callers wanting
    rollback-on-error or test-only pass a copy.
    """
    if default_operation not in DEFAULT_OPERATIONS:
        return [DataError("invalid-value", f"unknown default-operation '{default_operation}'",
                          error_type="protocol")]
    editor = _Editor(stop_on_error)
    if default_operation == "replace":
        # "replace" as the default makes the new data the whole datastore.
        for child in list(target):
            target.remove(child)
    try:
        editor.children(target, config, default_operation)
    except _StopEditing:
        pass
    return editor.errors


class _Editor:
    def __init__(self, stop_on_error: bool) -> None:
        self.stop_on_error = stop_on_error
        self.errors: list[DataError] = []
        self._indexes: dict[etree._Element, _ChildIndex] = {}

    def children(self, target: etree._Element, edit: etree._Element, operation: str) -> None:
        for edit_node in elements(edit):
            try:
                self.node(target, edit_node, operation)
            except DataError as err:
                self.errors.append(err)
                if self.stop_on_error:
                    raise _StopEditing from err

    def node(self, parent: etree._Element, edit_node: etree._Element, inherited: str) -> None:
        operation = _operation(edit_node, inherited)
        index = self._index(parent)
        identity = _identity(edit_node)
        existing = index.find(identity, edit_node)
        if operation in ("delete", "remove"):
            if existing is not None:
                index.remove(identity)
            elif operation == "delete":
                raise DataError("data-missing", "data to delete does not exist", node=edit_node)
            return
        if operation == "create" and existing is not None:
            raise DataError("data-exists", "data to create already exists", node=edit_node)
        if operation == "none":
            if existing is None:
                raise DataError("data-missing", "no such data node (default-operation none)",
                                node=edit_node)
            self.children(existing, edit_node, operation)
            return
        if operation == "replace" and existing is not None:
            fresh = _new_element(edit_node.tag, parent)
            existing.addprevious(fresh)  # keep the entry where it was
            index.remove(identity)
            index.add(identity, fresh)
            existing = fresh
        if existing is None:
            existing = _new_element(edit_node.tag, parent)
            index.add(identity, existing)
        self.fill(existing, edit_node, operation)

    def fill(self, target: etree._Element, edit_node: etree._Element, operation: str) -> None:
        name = etree.QName(edit_node).localname
        value = _value(edit_node)
        if _is_leaf(edit_node):
            if not _is_leaf(target):
                if value:
                    raise DataError("bad-element", f"'{name}' is a container, not a leaf",
                                    node=edit_node, info={"bad-element": name})
                return  # an empty container in a merge only says "descend here"
            target.text = value or None
            return
        if value:
            raise DataError("bad-element", f"'{name}' has both a value and children",
                            node=edit_node, info={"bad-element": name})
        if _is_leaf(target) and _value(target):
            raise DataError("bad-element", f"'{name}' is a leaf, not a container",
                            node=edit_node, info={"bad-element": name})
        target.text = None
        self.children(target, edit_node, operation)

    def _index(self, parent: etree._Element) -> _ChildIndex:
        if parent not in self._indexes:
            self._indexes[parent] = _ChildIndex(parent)
        return self._indexes[parent]


class _ChildIndex:
    """A stored node's children by identity, kept up to date during one edit, so editing
    n list entries costs O(n) lookups instead of n scans of the list."""

    def __init__(self, parent: etree._Element) -> None:
        self.parent = parent
        self.by_identity: dict[tuple[str, str | None], etree._Element] = {}
        self.keyed_tags: set[str] = set()
        for child in elements(parent):
            identity = _identity(child)
            self.by_identity.setdefault(identity, child)
            if identity[1] is not None:
                self.keyed_tags.add(identity[0])

    def find(self, identity: tuple[str, str | None],
             edit_node: etree._Element) -> etree._Element | None:
        """The stored node an edit node addresses: same name and, for list entries, key."""
        found = self.by_identity.get(identity)
        if found is None and identity[1] is None and identity[0] in self.keyed_tags:
            raise DataError("missing-element", f"list entry without its key '{KEY_LEAF}'",
                            node=edit_node, info={"bad-element": KEY_LEAF})
        return found

    def add(self, identity: tuple[str, str | None], node: etree._Element) -> None:
        self.by_identity[identity] = node
        if identity[1] is not None:
            self.keyed_tags.add(identity[0])

    def remove(self, identity: tuple[str, str | None]) -> None:
        self.parent.remove(self.by_identity.pop(identity))


def _identity(node: etree._Element) -> tuple[str, str | None]:
    return node.tag, None if _is_top_level(node) else _key(node)


def _operation(edit_node: etree._Element, inherited: str) -> str:
    operation = edit_node.get(OPERATION_ATTR)
    if operation is None:
        return inherited
    if operation not in EDIT_OPERATIONS:
        raise DataError("bad-attribute", f"unknown operation '{operation}'", node=edit_node,
                        error_type="protocol",
                        info={"bad-attribute": "operation",
                              "bad-element": etree.QName(edit_node).localname})
    return operation


# --- subtree filtering (RFC 6241 section 6) -------------------------------------------

def subtree_filter(root: etree._Element, filter_node: etree._Element | None) -> etree._Element:
    """A copy of `root` (same root tag) holding only what `filter_node` selects.

    `filter_node` is the `<filter>` element; None means no filter (everything), an empty
    filter selects nothing.
    """
    if filter_node is None:
        return copy.deepcopy(root)
    selection = _Selection()
    for selector in elements(filter_node):
        for data in _matching(root, selector):
            selection.match(data, selector)
    return selection.copy(root, None)


class _Selection:
    """Marks the data nodes a filter selects; several filter nodes may select the same
    data node, so marks are unioned before the result is built."""

    def __init__(self) -> None:
        self.whole: set[etree._Element] = set()
        self.partial: set[etree._Element] = set()

    def match(self, data: etree._Element, selector: etree._Element) -> bool:
        """Apply `selector` (already matching `data` by name) to `data`; True if selected."""
        subs = list(elements(selector))
        if not subs:  # selection node
            self.whole.add(data)
            return True
        content = [s for s in subs if _is_leaf(s) and _value(s)]
        matched_content = []
        for match in content:
            equal = [d for d in _matching(data, match)
                     if _is_leaf(d) and _value(d) == _value(match)]
            if not equal:
                return False
            matched_content.extend(equal)
        others = [s for s in subs if not (_is_leaf(s) and _value(s))]
        if not others:  # only content-match nodes: the whole node is selected
            self.whole.add(data)
            return True
        self.whole.update(matched_content)
        selected = False
        for sub in others:
            for child in _matching(data, sub):
                selected = self.match(child, sub) or selected
        if selected or matched_content:
            self.partial.add(data)
            return True
        return False

    def copy(self, node: etree._Element, parent: etree._Element | None) -> etree._Element:
        if node in self.whole:
            return _canonical_copy(node, parent)
        shell = _new_element(node.tag, parent)
        for child in elements(node):
            if child in self.whole or child in self.partial:
                self.copy(child, shell)
        return shell


def _matching(data: etree._Element, selector: etree._Element) -> Iterator[etree._Element]:
    """Children of `data` a filter node names. A selector without namespace matches the
    local name in any namespace; selector attributes must match (attribute-match nodes)."""
    qname = etree.QName(selector)
    for child in elements(data):
        if qname.namespace:
            if child.tag != selector.tag:
                continue
        elif etree.QName(child).localname != qname.localname:
            continue
        if all(child.get(k) == v for k, v in selector.attrib.items()):
            yield child
