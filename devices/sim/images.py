"""Software images: generate them, inspect them, judge them, keep them in an NE's store.

An image is a tar archive `TYPE-VERSION.img` holding `manifest.json` (ne_type, version,
payload_sha256, payload_size, build) and `payload.bin`. Inspection reads a file once
into facts (`ImageInspection`); whether an NE accepts it is a pure decision
(`judge_image`) on those facts, so the refusal reasons are unit-testable.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import re
import shutil
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

MANIFEST = "manifest.json"
PAYLOAD = "payload.bin"
MIN_PAYLOAD = 1024
# Where payload.bin's bytes begin in a generated image: manifest header, manifest data
# (always under 512 bytes), payload header.
PAYLOAD_OFFSET = 3 * 512
_BLOCK = 64 * 1024
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
# Names a client may give an image file: no directories, no hidden files.
IMAGE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def image_file_name(ne_type: str, version: str) -> str:
    return f"{ne_type}-{version}.img"


@dataclass(frozen=True)
class Manifest:
    ne_type: str
    version: str
    payload_sha256: str
    payload_size: int
    build: str


@dataclass(frozen=True)
class ImageInspection:
    """What one file is: its whole-file checksum, and its manifest if it is a sound image
    (`problem` says why not: unreadable archive, missing member, checksum mismatch)."""

    size: int
    sha256: str
    manifest: Manifest | None
    problem: str | None


@dataclass(frozen=True)
class Verdict:
    """An NE's judgement of an image: `app_tag` is the contract's error-app-tag when refused."""

    app_tag: str | None
    reason: str

    @property
    def ok(self) -> bool:
        return self.app_tag is None


def _payload_block(ne_type: str, version: str, build: str) -> bytes:
    # Deterministic content: the same type, version and build always give the same
    # checksum, and a generated gigabyte costs one 64 KiB block of hashing.
    seed = hashlib.sha256(f"{ne_type}/{version}/{build}".encode()).digest()
    out = bytearray()
    while len(out) < _BLOCK:
        seed = hashlib.sha256(seed).digest()
        out += seed
    return bytes(out[:_BLOCK])


class _RepeatingReader(io.RawIOBase):
    """A file-like view of `size` bytes made of one repeated block, for tarfile to stream."""

    def __init__(self, block: bytes, size: int) -> None:
        self._block, self._left, self._pos = block, size, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        n = min(len(buffer), self._left)
        written = 0
        while written < n:
            start = self._pos % len(self._block)
            take = min(n - written, len(self._block) - start)
            buffer[written:written + take] = self._block[start:start + take]
            written += take
            self._pos += take
        self._left -= n
        return n


def generate_image(out_dir: Path | str, ne_type: str, version: str, *,
                   payload_size: int = 1024 * 1024, build: str = "") -> Path:
    """Write `TYPE-VERSION.img` into out_dir (atomically) and return its path."""
    payload_size = max(payload_size, MIN_PAYLOAD)
    build = build or f"{ne_type.lower()}-{version}-b1"
    block = _payload_block(ne_type, version, build)
    digest = hashlib.sha256()
    for chunk in _chunks(_RepeatingReader(block, payload_size)):
        digest.update(chunk)
    manifest = json.dumps({"ne_type": ne_type, "version": version, "payload_sha256": digest.hexdigest(),
                           "payload_size": payload_size, "build": build}, indent=1).encode()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    target = out / image_file_name(ne_type, version)
    partial = target.with_name(target.name + ".partial")
    # USTAR with the manifest first keeps the layout fixed: payload data starts at
    # byte 1536 (see PAYLOAD_OFFSET), which transfer corruption relies on.
    with tarfile.open(partial, "w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo(MANIFEST)
        info.size, info.mode = len(manifest), 0o644
        tar.addfile(info, io.BytesIO(manifest))
        info = tarfile.TarInfo(PAYLOAD)
        info.size, info.mode = payload_size, 0o644
        tar.addfile(info, _RepeatingReader(block, payload_size))
    partial.replace(target)
    return target


def _chunks(stream) -> Iterator[bytes]:
    return iter(lambda: stream.read(1024 * 1024), b"")


def inspect_image(path: Path) -> ImageInspection:
    """Read a file (blocking; run it in a thread for big files) into the facts an NE judges."""
    size = path.stat().st_size
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in _chunks(f):
            digest.update(chunk)
    try:
        manifest, problem = _read_archive(path)
    except (tarfile.TarError, OSError, EOFError) as err:
        manifest, problem = None, f"not a readable image archive ({err})"
    return ImageInspection(size, digest.hexdigest(), manifest, problem)


def _read_archive(path: Path) -> tuple[Manifest | None, str | None]:
    with tarfile.open(path, "r:") as tar:
        members = {m.name: m for m in tar.getmembers()}
        if set(members) != {MANIFEST, PAYLOAD} or not all(m.isfile() for m in members.values()):
            return None, f"archive must hold exactly {MANIFEST} and {PAYLOAD}, found {sorted(members)}"
        try:
            raw = json.loads(tar.extractfile(members[MANIFEST]).read())
        except ValueError as err:
            return None, f"{MANIFEST} is not valid JSON ({err})"
        manifest, problem = parse_manifest(raw)
        if manifest is None:
            return None, problem
        payload = tar.extractfile(members[PAYLOAD])
        digest = hashlib.sha256()
        for chunk in _chunks(payload):
            digest.update(chunk)
        if members[PAYLOAD].size != manifest.payload_size:
            return manifest, (f"payload is {members[PAYLOAD].size} bytes, "
                              f"manifest says {manifest.payload_size}")
        if digest.hexdigest() != manifest.payload_sha256:
            return manifest, (f"payload checksum {digest.hexdigest()[:16]}... does not match "
                              f"manifest {manifest.payload_sha256[:16]}...")
        return manifest, None


def parse_manifest(raw: object) -> tuple[Manifest | None, str | None]:
    """Check a decoded manifest.json; returns the manifest or why it is unusable."""
    if not isinstance(raw, dict):
        return None, f"{MANIFEST} must be a JSON object"
    expected = {"ne_type": str, "version": str, "payload_sha256": str, "payload_size": int, "build": str}
    for key, kind in expected.items():
        value = raw.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            return None, f"{MANIFEST}: {key} missing or not a {kind.__name__}"
    if not _SHA256_RE.match(raw["payload_sha256"]):
        return None, f"{MANIFEST}: payload_sha256 is not a hex SHA-256"
    return Manifest(**{k: raw[k] for k in expected}), None


def judge_image(inspection: ImageInspection, *, ne_type: str, versions: tuple[str, ...]) -> Verdict:
    """Would an NE of `ne_type` that knows `versions` install this image? Integrity first,
    then type, then version: a corrupt file's manifest cannot be trusted."""
    if inspection.problem or inspection.manifest is None:
        return Verdict("image-corrupt", inspection.problem or "no manifest")
    manifest = inspection.manifest
    if manifest.ne_type != ne_type:
        return Verdict("wrong-ne-type", f"image is for {manifest.ne_type}, this NE is {ne_type}")
    if manifest.version not in versions:
        return Verdict("unknown-version",
                       f"version {manifest.version} is not one of {', '.join(versions)} for {ne_type}")
    return Verdict(None, f"{manifest.ne_type} {manifest.version} build {manifest.build}")


class ImageStore:
    """An NE's `/images/` directory with a cache of inspections keyed by size and mtime,
    so listing a store of big images does not re-hash them."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.writing: set[str] = set()  # files an SFTP client has open for writing
        self._cache: dict[str, tuple[tuple[int, int], ImageInspection]] = {}

    def reset(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)
        self.directory.mkdir(parents=True)
        self._cache.clear()

    def path(self, name: str) -> Path | None:
        if not IMAGE_NAME_RE.match(name):
            return None
        path = self.directory / name
        return path if path.is_file() else None

    def used_bytes(self) -> int:
        with os.scandir(self.directory) as entries:
            return sum(e.stat().st_size for e in entries if e.is_file())

    def inspect(self, name: str) -> ImageInspection | None:
        """The cached inspection, refreshed (blocking) when the file changed; callers on the
        event loop warm the cache with `warm` first so big files hash in a thread."""
        path = self.path(name)
        if path is None:
            return None
        try:
            stat = path.stat()
            key = (stat.st_size, stat.st_mtime_ns)
            cached = self._cache.get(name)
            if cached and cached[0] == key:
                return cached[1]
            inspection = inspect_image(path)
        except FileNotFoundError:  # removed by a client while we looked
            return None
        self._cache[name] = (key, inspection)
        return inspection

    async def warm(self, name: str | None = None) -> None:
        names = [name] if name else self.names()
        for each in names:
            await asyncio.to_thread(self.inspect, each)

    def names(self) -> list[str]:
        """Complete image files; files still being uploaded are left out."""
        return sorted(p.name for p in self.directory.iterdir() if p.is_file() and p.name not in self.writing)

    def entries(self) -> list[tuple[str, ImageInspection]]:
        names = self.names()
        out = [(name, inspection) for name in names if (inspection := self.inspect(name))]
        self._cache = {n: v for n, v in self._cache.items() if n in names}
        return out
