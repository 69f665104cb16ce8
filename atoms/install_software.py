"""install_software: the NE verifies and installs an uploaded image (inactive until activated)."""

from __future__ import annotations

from changeline.engine.atom import AtomContext, AtomResult, AtomSpec, Journaled, timed
from changeline.errors import CheckFailed

SPEC = AtomSpec(
    name="install_software",
    summary="Install an uploaded image; the NE checks checksum, manifest and type",
    args_schema={
        "type": "object",
        "additionalProperties": False,
        "required": ["image"],
        "properties": {"image": {"type": "string", "minLength": 1, "description": "image file name on the NE"}},
    },
    mutating=True,
    undo_note="an installed image is inert until activated; activate_software's undo restores the version",
    estimate_s=120,
    manual_minutes=20,
)


@timed
def run(ctx: AtomContext, *, image: str) -> AtomResult:
    name = image.rsplit("/", 1)[-1]
    images = {i.name: i for i in ctx.driver.list_images()}
    if name not in images:
        raise CheckFailed(f"image {name} is not on the NE; transfer it first")
    if images[name].state in ("installed", "active"):
        return AtomResult(atom=SPEC.name, ne=ctx.ne, changed=False, reason=f"{name} already {images[name].state}")
    with Journaled(ctx, SPEC.name, None) as j:
        ctx.driver.install(name)
        state = {i.name: i for i in ctx.driver.list_images()}.get(name)
        if state is None or state.state not in ("installed", "active"):
            raise CheckFailed(f"{name} reports state {state.state if state else 'missing'} after install")
        j.result = AtomResult(atom=SPEC.name, ne=ctx.ne, changed=True, reason=f"{name} installed",
                              evidence={"image": name, "version": state.version})
    return j.result
