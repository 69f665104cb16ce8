"""The versioned model library: `models/library/<ne-type>/<release>/<name>.yaml` plus an index.

`published.json` records every published (name, version) with its path and the sha256 of
its exact bytes. A published version is immutable: publishing different content under
the same name and version is refused, and a library file edited without a new version
shows up as `modified` (and is never served by `find` or `lookup`). The file at a path is
always the newest published version of that model; older versions stay in the index
(`superseded`) with their checksum, their content in version control.

Layout: `<ne-type>` is the model's NE type in lower case (`p-cscf`), or `common` for a
model of several types; `<release>` is MAJOR.MINOR of the upgrade's toVersion, of the
newest version a change applies to, or `any`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

from changeline.errors import EXIT_BAD_INPUT, ChangelineError, InputError, Problem
from changeline.models.model import Model
from changeline.models.validate import load_model

LIBRARY_DIR = Path(__file__).with_name("library")
INDEX_NAME = "published.json"


class LibraryError(ChangelineError):
    """A model is not in the library (not published, ambiguous, edited or superseded)."""

    exit_code = EXIT_BAD_INPUT  # the name asked for is the input at fault


def semver_key(version: str) -> tuple:
    """Order semantic versions: 1.10.0 > 1.9.0, and 1.0.0-rc.1 < 1.0.0."""
    core, _, pre = version.split("+", 1)[0].partition("-")
    numbers = tuple(int(p) if p.isdigit() else 0 for p in core.split("."))
    if not pre:
        return numbers, (1,)
    parts = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split("."))
    return numbers, (0, parts)


def _release(version: str) -> str:
    return ".".join(version.split(".")[:2])


def canonical_path(model: Model) -> PurePosixPath:
    """Where `model` lives in the library, relative to its root."""
    type_dir = model.ne_types[0].lower() if len(model.ne_types) == 1 else "common"
    if model.is_upgrade and model.to_version:
        release = _release(model.to_version)
    elif model.versions:
        release = _release(max(model.versions, key=semver_key))
    else:
        release = "any"
    return PurePosixPath(type_dir, release, f"{model.name}.yaml")


@dataclass(frozen=True)
class Entry:
    name: str
    version: str
    kind: str
    ne_types: tuple[str, ...]
    from_versions: tuple[str, ...]
    to_version: str | None
    versions: tuple[str, ...]
    path: str
    sha256: str
    published_at: str

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def describe_target(self) -> str:
        types = ",".join(self.ne_types)
        if self.kind == "UpgradeModel":
            return f"{types} {','.join(self.from_versions)} -> {self.to_version}"
        return f"{types} {','.join(self.versions) or 'any'}"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "version": self.version, "kind": self.kind,
                               "neTypes": list(self.ne_types)}
        if self.kind == "UpgradeModel":
            out |= {"fromVersions": list(self.from_versions), "toVersion": self.to_version}
        elif self.versions:
            out["versions"] = list(self.versions)
        return out | {"path": self.path, "sha256": self.sha256, "publishedAt": self.published_at}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> "Entry":
        return cls(name=raw["name"], version=raw["version"], kind=raw["kind"], ne_types=tuple(raw["neTypes"]),
                   from_versions=tuple(raw.get("fromVersions", ())), to_version=raw.get("toVersion"),
                   versions=tuple(raw.get("versions", ())), path=raw["path"], sha256=raw["sha256"],
                   published_at=raw.get("publishedAt", ""))

    @classmethod
    def of(cls, model: Model, path: PurePosixPath, sha256: str, published_at: str) -> "Entry":
        return cls(name=model.name, version=model.version, kind=model.kind, ne_types=model.ne_types,
                   from_versions=model.from_versions, to_version=model.to_version, versions=model.versions,
                   path=str(path), sha256=sha256, published_at=published_at)


@dataclass(frozen=True)
class Published:
    entry: Entry
    changed: bool        # False: this exact content was published already
    path: Path           # the library file


class Library:
    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else LIBRARY_DIR
        self.index_path = self.root / INDEX_NAME
        if not self.root.is_dir():  # else every look-up would just say "nothing published"
            what = "is not a directory" if self.root.exists() else "does not exist"
            raise InputError(Problem(str(self.root), 0, 0, "--library", f"library directory {what}"))

    # --- the index ---------------------------------------------------------------------

    def entries(self) -> list[Entry]:
        if not self.index_path.exists():
            return []
        try:
            raw = json.loads(self.index_path.read_text(encoding="utf-8"))
            entries = [Entry.from_json(e) for e in raw["models"]]
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise InputError(Problem(str(self.index_path), 1, 1, "", f"unreadable library index: {err}")) from None
        for entry in entries:  # an index is data: its paths must stay inside the library
            rel = PurePosixPath(entry.path)
            if rel.is_absolute() or ".." in rel.parts or not rel.parts:
                raise InputError(Problem(str(self.index_path), 1, 1, "", f"{entry.ref}: path {entry.path!r} "
                                         "is outside the library"))
        return sorted(entries, key=lambda e: (e.name, semver_key(e.version)))

    def _write(self, entries: list[Entry]) -> None:
        entries = sorted(entries, key=lambda e: (e.name, semver_key(e.version)))
        text = json.dumps({"models": [e.to_json() for e in entries]}, indent=2) + "\n"
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".published-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, self.index_path)

    def status(self, entry: Entry, entries: list[Entry] | None = None) -> str:
        """`ok` (the file is this version), `superseded` (a newer published version replaced
        it), `modified` (edited and not published), or `missing`."""
        path = self.root / entry.path
        if not path.is_file():
            return "missing"
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest == entry.sha256:
            return "ok"
        entries = entries if entries is not None else self.entries()
        if any(e.name == entry.name and e.sha256 == digest and semver_key(e.version) > semver_key(entry.version)
               for e in entries):
            return "superseded"
        return "modified"

    def current(self) -> list[Entry]:
        entries = self.entries()
        return [e for e in entries if self.status(e, entries) == "ok"]

    # --- publish -----------------------------------------------------------------------

    def publish(self, file: str | Path, *, now: datetime | None = None) -> Published:
        """Validate `file`, put it at its library path and record it. InputError if it is invalid,
        if its (name, version) is published with other content, or if a newer version exists."""
        file = Path(file)
        model = load_model(file)
        data = file.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        rel = canonical_path(model)
        dest = self.root / rel
        version_at = model.source.problem(("metadata", "version"), "")
        entries = self.entries()
        same = next((e for e in entries if e.name == model.name and e.version == model.version), None)
        if same is not None:
            if same.sha256 == digest:
                return Published(same, False, self.root / same.path)
            raise InputError(_at(version_at, f"{model.ref} is already published with different content "
                                 f"(sha256 {same.sha256[:12]}..., this file {digest[:12]}...); a published version "
                                 "never changes: give this content a new metadata.version"))
        newer = [e for e in entries if e.name == model.name and semver_key(e.version) > semver_key(model.version)]
        if newer:
            raise InputError(_at(version_at, f"{newer[-1].ref} is published already; publish {model.name} "
                                 f"with a version above {newer[-1].version}"))
        resolved = file.resolve()
        root = self.root.resolve()
        if resolved.is_relative_to(root) and resolved != dest.resolve():
            raise InputError(Problem(str(file), 1, 1, "", f"library models live at {self.root / rel} "
                                     "(<ne-type>/<release>/<name>.yaml): move it there"))
        if resolved != dest.resolve():
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(file, dest)
        stamp = (now or datetime.now(timezone.utc)).strftime("%Y-%m-%dT%H:%M:%SZ")
        entry = Entry.of(model, rel, digest, stamp)
        self._write(entries + [entry])
        return Published(entry, True, dest)

    # --- find ----------------------------------------------------------------------------

    def find(self, ref: str) -> Entry:
        """`NAME` (its newest published version) or `NAME@VERSION`."""
        name, _, version = ref.partition("@")
        entries = self.entries()
        versions = [e for e in entries if e.name == name]
        if not versions:
            known = ", ".join(sorted({e.name for e in entries})) or "none"
            raise LibraryError(f"no model named {name!r} is published (published: {known})")
        if version:
            entry = next((e for e in versions if e.version == version), None)
            if entry is None:
                raise LibraryError(f"{name}@{version} is not published "
                                 f"(published versions: {', '.join(e.version for e in versions)})")
            return entry
        return versions[-1]

    def load(self, entry_or_ref: Entry | str) -> Model:
        """The published model, after checking the file is exactly what was published."""
        entry = self.find(entry_or_ref) if isinstance(entry_or_ref, str) else entry_or_ref
        state = self.status(entry)
        if state != "ok":
            raise LibraryError(_unavailable(entry, state, self.root))
        return load_model(self.root / entry.path)

    def text(self, entry: Entry) -> str:
        state = self.status(entry)
        if state != "ok":
            raise LibraryError(_unavailable(entry, state, self.root))
        return (self.root / entry.path).read_text(encoding="utf-8")

    def lookup(self, ne_type: str, from_version: str, to_version: str) -> Entry:
        """The published upgrade model for one NE type and version step (newest version of it)."""
        upgrades = [e for e in self.current() if e.kind == "UpgradeModel"
                    and ne_type.lower() in (t.lower() for t in e.ne_types)]
        matches = [e for e in upgrades if from_version in e.from_versions and e.to_version == to_version]
        names = sorted({e.name for e in matches})
        if not matches:
            known = "; ".join(f"{e.ref} {e.describe_target()}" for e in upgrades) or "none"
            raise LibraryError(f"no published upgrade model for {ne_type} {from_version} -> {to_version} "
                             f"(published {ne_type} upgrades: {known})")
        if len(names) > 1:
            raise LibraryError(f"several published models upgrade {ne_type} {from_version} -> {to_version}: "
                             f"{', '.join(names)}; name the one to use")
        return max(matches, key=lambda e: semver_key(e.version))

    def changes(self, ne_type: str | None = None) -> list[Entry]:
        return [e for e in self.current() if e.kind == "ChangeModel"
                and (ne_type is None or ne_type.lower() in (t.lower() for t in e.ne_types))]


def _at(where: Problem, message: str) -> Problem:
    return Problem(where.file, where.line, where.column, where.field, message)


def _unavailable(entry: Entry, state: str, root: Path) -> str:
    path = root / entry.path
    if state == "missing":
        return f"{entry.ref}: {path} is missing"
    if state == "superseded":
        return (f"{entry.ref} was superseded at {path} by a newer published version; its content "
                f"(sha256 {entry.sha256[:12]}...) is in version control history")
    return (f"{entry.ref}: {path} was edited after it was published (sha256 differs); "
            "publish it under a new metadata.version")


MODEL_REF = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(@[0-9A-Za-z.+-]+)?$")
