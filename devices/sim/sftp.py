"""The NE's SFTP subsystem: a per-NE root with a writable `/images/` and a read-only `/cdr/`.

Uploads are throttled to the profile's transfer rate (scaled by speed), refused when the
NE's disk is full, and subject to the transfer faults: `fail` breaks the connection
part-way, `corrupt` flips a payload byte so the image's checksums no longer match.
"""

from __future__ import annotations

import asyncio
import posixpath
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import asyncssh
from asyncssh.constants import FXF_APPEND, FXF_CREAT, FXF_TRUNC, FXF_WRITE

from .clock import SimClock
from .faults import FaultSet, transfer_action
from .images import IMAGE_NAME_RE, PAYLOAD_OFFSET, ImageStore

IMAGES_DIR = "/images"
CDR_DIR = "/cdr"
# A failing transfer breaks off after this much data, like a link that drops mid-copy.
FAIL_AFTER_BYTES = 64 * 1024
_MIB = 1024 * 1024
_BLOCK = 4096


class SftpBackend(Protocol):
    sftp_root: Path
    images: ImageStore
    faults: FaultSet
    clock: SimClock

    def disk_free_bytes(self) -> int: ...

    def disk_total_bytes(self) -> int: ...

    def transfer_bytes_per_sim_second(self) -> float: ...


def virtual_path(path: bytes) -> str:
    """The client's path as the NE sees it, normalised inside its root."""
    return posixpath.normpath(posixpath.join("/", path.decode("utf-8", "replace")))


def image_name(path: bytes) -> str | None:
    """The image file a path names if it is one a client may write: `/images/NAME`."""
    directory, name = posixpath.split(virtual_path(path))
    return name if directory == IMAGES_DIR and IMAGE_NAME_RE.match(name) else None


def refusal(path: bytes) -> str:
    where = virtual_path(path)
    if where == CDR_DIR or where.startswith(CDR_DIR + "/"):
        return f"{CDR_DIR}/ is read-only"
    return f"only files directly in {IMAGES_DIR}/ may be written: {where}"


def corrupt_index(offset: int, length: int) -> int | None:
    """Which byte of a write to flip so a corrupted upload fails the payload checksum:
    the first payload byte of a generated image, if this write covers it."""
    return PAYLOAD_OFFSET - offset if offset <= PAYLOAD_OFFSET < offset + length else None


@dataclass
class _Upload:
    name: str
    action: str | None  # fault decided when the file was opened: fail, corrupt or None
    started: float
    written: int = 0
    broken: bool = False


class NeSftpServer(asyncssh.SFTPServer):
    def __init__(self, chan: asyncssh.SSHServerChannel, ne: SftpBackend) -> None:
        super().__init__(chan, chroot=str(ne.sftp_root).encode())
        self._ne = ne
        self._uploads: dict[int, _Upload] = {}

    def _require_writable(self, path: bytes) -> str:
        name = image_name(path)
        if name is None:
            raise asyncssh.SFTPPermissionDenied(refusal(path))
        return name

    def open(self, path: bytes, pflags: int, attrs: asyncssh.SFTPAttrs) -> object:
        if not pflags & (FXF_WRITE | FXF_APPEND | FXF_CREAT | FXF_TRUNC):
            return super().open(path, pflags, attrs)
        name = self._require_writable(path)
        file_obj = super().open(path, pflags, attrs)
        self._uploads[id(file_obj)] = _Upload(name, transfer_action(self._ne.faults), time.monotonic())
        self._ne.images.writing.add(name)
        return file_obj

    async def write(self, file_obj: object, offset: int, data: bytes) -> int:
        upload = self._uploads.get(id(file_obj))
        if upload is None:
            raise asyncssh.SFTPPermissionDenied("file is not open for writing")
        current = file_obj.seek(0, 2)  # type: ignore[attr-defined]
        growth = max(0, offset + len(data) - current)
        free = self._ne.disk_free_bytes()
        if growth > free:
            raise asyncssh.SFTPNoSpaceOnFilesystem(
                f"No space left on device: {free // _MIB} MB free, write needs {growth // _MIB + 1} MB")
        if upload.action == "fail" and upload.written >= FAIL_AFTER_BYTES:
            self._break_connection(upload)
        if upload.action == "corrupt" and (index := corrupt_index(offset, len(data))) is not None:
            data = data[:index] + bytes([data[index] ^ 0xFF]) + data[index + 1:]
        written = super().write(file_obj, offset, data)
        upload.written += len(data)
        await self._throttle(upload)
        return written  # type: ignore[return-value]

    async def _throttle(self, upload: _Upload) -> None:
        rate = self._ne.transfer_bytes_per_sim_second() / self._ne.clock.speed
        ahead = upload.written / rate - (time.monotonic() - upload.started)
        if ahead > 0:
            await asyncio.sleep(ahead)

    def _break_connection(self, upload: _Upload) -> None:
        upload.broken = True
        self.connection.abort()
        raise asyncssh.SFTPConnectionLost("transfer aborted: connection lost")

    async def close(self, file_obj: object) -> None:
        """Also called by asyncssh for files still open when a session ends (a dropped
        client), which leaves them partial: they list as invalid."""
        upload = self._uploads.pop(id(file_obj), None)
        super().close(file_obj)
        if upload is None:
            return
        self._ne.images.writing.discard(upload.name)
        if upload.action == "fail" and not upload.broken:  # too short to reach the break-off point
            self._break_connection(upload)
        await self._ne.images.warm(upload.name)  # hash now, in a thread, not on the next <get>

    def remove(self, path: bytes) -> None:
        self._require_writable(path)
        super().remove(path)

    def rename(self, oldpath: bytes, newpath: bytes) -> None:
        self._require_writable(oldpath)
        self._require_writable(newpath)
        super().rename(oldpath, newpath)

    def posix_rename(self, oldpath: bytes, newpath: bytes) -> None:
        self._require_writable(oldpath)
        self._require_writable(newpath)
        super().posix_rename(oldpath, newpath)

    def setstat(self, path: bytes, attrs: asyncssh.SFTPAttrs) -> None:
        self._require_writable(path)
        super().setstat(path, attrs)

    def lsetstat(self, path: bytes, attrs: asyncssh.SFTPAttrs) -> None:
        self._require_writable(path)
        super().lsetstat(path, attrs)

    def mkdir(self, path: bytes, attrs: asyncssh.SFTPAttrs) -> None:
        raise asyncssh.SFTPPermissionDenied("the NE's file system layout is fixed")

    def rmdir(self, path: bytes) -> None:
        raise asyncssh.SFTPPermissionDenied("the NE's file system layout is fixed")

    def symlink(self, oldpath: bytes, newpath: bytes) -> None:
        raise asyncssh.SFTPPermissionDenied("links are not supported")

    def link(self, oldpath: bytes, newpath: bytes) -> None:
        raise asyncssh.SFTPPermissionDenied("links are not supported")

    def statvfs(self, path: bytes) -> asyncssh.SFTPVFSAttrs:
        """`df` over SFTP shows the NE's disk, not the simulator host's."""
        total, free = self._ne.disk_total_bytes() // _BLOCK, self._ne.disk_free_bytes() // _BLOCK
        return asyncssh.SFTPVFSAttrs(bsize=_BLOCK, frsize=_BLOCK, blocks=total, bfree=free, bavail=free,
                                     files=1 << 20, ffree=1 << 20, favail=1 << 20, fsid=0, flag=0,
                                     namemax=255)
