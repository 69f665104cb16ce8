"""Known-good inputs the hostile cases start from, and the hostile values they plant."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
GOOD_MODEL = ROOT / "models" / "library" / "amf" / "1.3" / "amf-upgrade.yaml"
LIBRARY_MODELS = sorted((ROOT / "models" / "library").glob("*/*/*.yaml"))
# Nobody sets this variable: a run whose every other input is fine still stops at the preflight.
UNSET_PASSWORD_ENV = "CHANGELINE_HOSTILE_NEVER_SET"


def good_inventory(**host_fields) -> str:
    hosts = {
        "amf-1": {"hostname": "192.0.2.11", "groups": ["5gc"],
                  "data": {"ne_type": "AMF", "software_version": "1.2.0", "pool": "amf-pool-1", "tags": ["canary"]}},
        "amf-2": {"hostname": "192.0.2.12", "groups": ["5gc"],
                  "data": {"ne_type": "AMF", "software_version": "1.2.0", "pool": "amf-pool-1"}},
        "smf-1": {"hostname": "192.0.2.21", "groups": ["5gc"], "data": {"ne_type": "SMF", "software_version": "1.2.0"}},
    }
    hosts["amf-1"].update(host_fields)
    return yaml.safe_dump({"defaults": {"port": 830, "username": "admin", "password_env": UNSET_PASSWORD_ENV},
                           "groups": {"5gc": {"data": {"region": "east"}}}, "hosts": hosts}, sort_keys=False)


def good_topology(**top_fields) -> str:
    doc = {"speed": 0.01, "control": "127.0.0.1:0", "address_base": "127.0.250.1",
           "nes": [{"name": "amf-1", "type": "AMF", "version": "1.2.0"}]}
    doc.update(top_fields)
    return yaml.safe_dump(doc, sort_keys=False)


def model_text(replace: tuple[str, str] | None = None, append: str = "") -> str:
    text = GOOD_MODEL.read_text()
    if replace:
        assert replace[0] in text, replace[0]
        text = text.replace(replace[0], replace[1], 1)
    return text + append


ALIAS_BOMB = "a: &a [x,x,x,x,x,x,x,x,x,x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(9))
RECURSIVE_ALIAS = "a: &a\n  b: *a\n"
DEEP_FLOW = "a: " + "[" * 5000 + "]" * 5000 + "\n"
DEEP_BLOCK = "".join("  " * i + f"k{i}:\n" for i in range(200)) + "  " * 200 + "v: 1\n"
BAD_TAGS = ["!!int abc", "!!bool maybe", "!!timestamp 2026-13-45", "!!float x", "!!python/object:os.system {}",
            "!!binary '%%%'", "!custom value"]

