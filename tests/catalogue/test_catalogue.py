"""The NE catalogue: the product's own data, read by lint, plans and the simulator."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from changeline.catalogue import CATALOGUE_DIR, YANG_DIR, builtin_catalogue, load_catalogue
from changeline.devices.sim.profiles import PROFILE_DIR, load_profile
from changeline.errors import InputError
from changeline.models.validate import load_model_text

UPGRADE = Path(__file__).resolve().parents[2] / "models" / "library" / "amf" / "1.3" / "amf-upgrade.yaml"


def _copy(tmp_path: Path) -> Path:
    root = tmp_path / "catalogue"
    shutil.copytree(CATALOGUE_DIR / "types", root / "types")
    shutil.copytree(CATALOGUE_DIR / "releases", root / "releases")
    return root


def test_builtin_catalogue_has_the_six_types_with_their_releases_and_modules():
    catalogue = builtin_catalogue()
    assert set(catalogue) == {"AMF", "SMF", "UPF", "NRF", "P-CSCF", "S-CSCF"}
    assert all(t.versions == ("1.1.0", "1.2.0", "1.3.0") for t in catalogue.values())
    assert catalogue["SMF"].scenarios["pdu-session"].writes_cdr
    assert not catalogue["AMF"].writes_cdrs and "dnns" not in catalogue["AMF"].containers
    assert (YANG_DIR / "changeline-ne.yang").is_file()


def test_adding_a_release_is_one_data_file(tmp_path: Path):
    """A new release file makes lint accept a model targeting it, and the simulator can run it."""
    model = UPGRADE.read_text().replace("toVersion: 1.3.0", "toVersion: 1.4.0")
    with pytest.raises(InputError, match=r"version 1.4.0 does not exist for AMF \(available: 1.1.0, 1.2.0, 1.3.0\)"):
        load_model_text(model, "amf-upgrade.yaml")

    root = _copy(tmp_path)
    (root / "releases" / "amf" / "1.4.0.yaml").write_text("type: AMF\nrelease: 1.4.0\nsummary: N2 handover fixes\n")
    catalogue = load_catalogue(root)
    assert catalogue["AMF"].versions == ("1.1.0", "1.2.0", "1.3.0", "1.4.0")
    assert load_model_text(model, "amf-upgrade.yaml", catalogue=catalogue).to_version == "1.4.0"

    profile = tmp_path / "amf.yaml"
    profile.write_text((PROFILE_DIR / "amf.yaml").read_text().replace("default_version: 1.2.0", "default_version: 1.4.0"))
    assert load_profile(profile, catalogue).default_version == "1.4.0"


@pytest.mark.parametrize("file,text,expected", [
    ("releases/amf/1.5.0.yaml", "type: AMF\nrelease: 1.5.1\n", "1.5.0.yaml:2:10: release: '1.5.1' must match the file name 1.5.0.yaml"),
    ("releases/amf/1.5.0.yaml", "type: SMF\nrelease: 1.5.0\n", "type: this release file is in AMF's release directory"),
    ("releases/amf/1.5.0.yaml", "type: AMF\nrelease: 1.5.0\nnotes: x\n", "notes: unknown field"),
    ("types/mme.yaml", "type: MME\ndomain: 4g\nwrites_cdrs: false\ncontainers: [timers]\n"
     "kpis: [{name: cpu, unit: '%'}]\nscenarios: []\n", "domain: must be one of 5gc, ims"),
])
def test_catalogue_mistakes_are_located(tmp_path: Path, file: str, text: str, expected: str):
    root = _copy(tmp_path)
    (root / file).parent.mkdir(parents=True, exist_ok=True)
    (root / file).write_text(text)
    with pytest.raises(InputError) as err:
        load_catalogue(root)
    assert expected in str(err.value)
    assert str(root / file) in str(err.value)


def test_a_type_without_releases_is_refused(tmp_path: Path):
    root = _copy(tmp_path)
    shutil.rmtree(root / "releases" / "nrf")
    with pytest.raises(InputError, match=r"nrf.yaml:1:1: type: no release files"):
        load_catalogue(root)
