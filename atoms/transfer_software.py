"""transfer_software: SFTP the image into the NE's image store; the NE's own checksum must match."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from changeline.engine.atom import AtomContext, AtomResult, AtomSpec, Journaled, bad_argument, timed
from changeline.devices import ne_api
from changeline.errors import CheckFailed, DeviceError, TransientError

SPEC = AtomSpec(
    name="transfer_software",
    summary="Upload a software image over SFTP, verified by the NE's checksum; skipped if already there",
    args_schema={
        "type": "object",
        "additionalProperties": False,
        "required": ["image"],
        "properties": {"image": {"type": "string", "minLength": 1, "description": "local path of the image file"}},
    },
    mutating=True,
    estimate_s=60,
    manual_minutes=15,
)


class TransferCorrupted(TransientError):
    """The NE computed a different checksum: worth one more upload."""


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@timed
def run(ctx: AtomContext, *, image: str) -> AtomResult:
    local = Path(image)
    if not local.is_file():
        raise bad_argument(ctx, SPEC.name, "image", f"{image} does not exist")
    name, size, digest = local.name, local.stat().st_size, sha256_file(local)
    present = {i.name: i for i in ctx.driver.list_images()}
    if name in present and present[name].sha256 == digest:
        return AtomResult(atom=SPEC.name, ne=ctx.ne, changed=False, reason=f"{name} already on the NE, checksum matches",
                          evidence={"sha256": digest})
    state = ctx.driver.read_state()
    if state.disk_free_mb * 1024 * 1024 < size:
        raise CheckFailed(f"not enough disk for {name}: {size / 1e6:.1f} MB needed, {state.disk_free_mb:g} MB free")
    remote = f"{ne_api.IMAGE_DIR}/{name}"
    # Undo removes only what we put there; an image that was there (corrupt) is replaced.
    with Journaled(ctx, SPEC.name, {"remove": remote, "sha256": digest}) as j:
        ctx.driver.transfer(local, remote)
        on_ne = {i.name: i for i in ctx.driver.list_images()}.get(name)
        if on_ne is None or on_ne.sha256 != digest:
            _remove(ctx, remote)
            raise TransferCorrupted(f"{name}: checksum on the NE {on_ne.sha256[:12] if on_ne else 'missing'} "
                                    f"!= local {digest[:12]}", host=ctx.ne)
        j.result = AtomResult(atom=SPEC.name, ne=ctx.ne, changed=True, reason=f"{name} transferred and verified",
                              evidence={"sha256": digest, "bytes": size})
    return j.result


def _remove(ctx: AtomContext, remote: str) -> None:
    try:
        ctx.driver.remove_file(remote)
    except (OSError, DeviceError):
        pass


def undo(ctx: AtomContext, record: dict) -> AtomResult:
    name = os.path.basename(record["remove"])
    images = {i.name: i for i in ctx.driver.list_images()}
    if name not in images:
        return AtomResult(atom=f"undo:{SPEC.name}", ne=ctx.ne, reason=f"{name} not on the NE")
    if images[name].state == "active":
        return AtomResult(atom=f"undo:{SPEC.name}", ne=ctx.ne, reason=f"{name} is active; kept")
    _remove(ctx, record["remove"])
    return AtomResult(atom=f"undo:{SPEC.name}", ne=ctx.ne, changed=True, reason=f"{name} removed")
