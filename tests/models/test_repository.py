"""The versioned library: publish, immutability, lookup, and the CLI on it."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone

import pytest

from changeline.errors import InputError
from changeline.models.library import Library, LibraryError, semver_key
from tests.models.helpers import LIBRARY, run_cli

SOURCE = LIBRARY / "amf" / "1.3" / "amf-upgrade.yaml"
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


@pytest.fixture
def lib(tmp_path):
    root = tmp_path / "library"
    root.mkdir()
    return Library(root)


def draft(tmp_path, version="1.0.0", *, name="amf-upgrade", extra=""):
    path = tmp_path / f"{name}-{version}.yaml"
    text = SOURCE.read_text().replace("version: 1.0.0", f"version: {version}").replace(
        "name: amf-upgrade", f"name: {name}")
    path.write_text(text.replace("$schema=../../../schema/", "$schema=../models/schema/") + extra)
    return path


def test_publish_copies_to_the_canonical_path_and_records_the_checksum(lib, tmp_path):
    result = lib.publish(draft(tmp_path), now=NOW)
    assert result.changed and result.path == lib.root / "amf" / "1.3" / "amf-upgrade.yaml"
    index = json.loads(lib.index_path.read_text())
    assert index == {"models": [{
        "name": "amf-upgrade", "version": "1.0.0", "kind": "UpgradeModel", "neTypes": ["AMF"],
        "fromVersions": ["1.2.0"], "toVersion": "1.3.0", "path": "amf/1.3/amf-upgrade.yaml",
        "sha256": result.entry.sha256, "publishedAt": "2026-01-02T03:04:05Z"}]}
    assert lib.status(result.entry) == "ok"


def test_republishing_the_same_content_changes_nothing(lib, tmp_path):
    first = lib.publish(draft(tmp_path), now=NOW)
    before = lib.index_path.read_bytes()
    again = lib.publish(draft(tmp_path), now=datetime.now(timezone.utc))
    assert not again.changed and again.entry == first.entry
    assert lib.index_path.read_bytes() == before


def test_a_published_version_is_immutable(lib, tmp_path):
    lib.publish(draft(tmp_path), now=NOW)
    changed = draft(tmp_path, extra="# a comment is a change too\n")
    with pytest.raises(InputError) as caught:
        lib.publish(changed)
    (problem,) = caught.value.problems
    assert (problem.line, problem.column, problem.field) == (9, 3, "metadata.version")
    assert problem.message.startswith("amf-upgrade@1.0.0 is already published with different content (sha256 ")
    assert problem.message.endswith("a published version never changes: give this content a new metadata.version")
    assert len(lib.entries()) == 1


def test_a_new_version_supersedes_and_an_older_one_is_refused(lib, tmp_path):
    old = lib.publish(draft(tmp_path, "1.0.0"), now=NOW).entry
    new = lib.publish(draft(tmp_path, "1.1.0", extra="# tuned\n"), now=NOW).entry
    assert lib.status(old) == "superseded" and lib.status(new) == "ok"
    assert lib.find("amf-upgrade") == new and lib.find("amf-upgrade@1.0.0") == old
    with pytest.raises(LibraryError, match="was superseded"):
        lib.load("amf-upgrade@1.0.0")
    with pytest.raises(InputError, match="amf-upgrade@1.1.0 is published already; publish amf-upgrade with a "
                                         "version above 1.1.0"):
        lib.publish(draft(tmp_path, "1.0.5"))


def test_an_edited_library_file_is_not_served(lib, tmp_path):
    entry = lib.publish(draft(tmp_path), now=NOW).entry
    path = lib.root / entry.path
    path.write_text(path.read_text() + "# edited in place\n")
    assert lib.status(entry) == "modified"
    with pytest.raises(LibraryError, match="was edited after it was published"):
        lib.load("amf-upgrade")
    with pytest.raises(LibraryError, match="no published upgrade model for AMF 1.2.0 -> 1.3.0"):
        lib.lookup("AMF", "1.2.0", "1.3.0")


def test_publish_refuses_invalid_models_and_misplaced_library_files(lib, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(SOURCE.read_text().replace("toVersion: 1.3.0", "toVersion: 1.2.0"))
    with pytest.raises(InputError, match="1.2.0 is also in fromVersions"):
        lib.publish(bad)
    misplaced = lib.root / "amf" / "amf-upgrade.yaml"
    misplaced.parent.mkdir(parents=True)
    shutil.copy(draft(tmp_path), misplaced)
    with pytest.raises(InputError, match="library models live at .*amf/1.3/amf-upgrade.yaml"):
        lib.publish(misplaced)
    assert lib.entries() == []


def test_lookup(lib, tmp_path):
    lib.publish(draft(tmp_path), now=NOW)
    assert lib.lookup("amf", "1.2.0", "1.3.0").ref == "amf-upgrade@1.0.0"
    with pytest.raises(LibraryError) as caught:
        lib.lookup("AMF", "1.1.0", "1.3.0")
    assert caught.value.reason == (
        "no published upgrade model for AMF 1.1.0 -> 1.3.0 (published AMF upgrades: amf-upgrade@1.0.0 AMF 1.2.0 -> 1.3.0)")
    lib.publish(draft(tmp_path, name="amf-upgrade-express"), now=NOW)
    with pytest.raises(LibraryError, match="several published models upgrade AMF 1.2.0 -> 1.3.0: amf-upgrade, "
                                         "amf-upgrade-express; name the one to use"):
        lib.lookup("AMF", "1.2.0", "1.3.0")


def test_find_unknown(lib, tmp_path):
    lib.publish(draft(tmp_path), now=NOW)
    with pytest.raises(LibraryError, match=r"no model named 'smf-upgrade' is published \(published: amf-upgrade\)"):
        lib.find("smf-upgrade")
    with pytest.raises(LibraryError, match=r"amf-upgrade@9.9.9 is not published \(published versions: 1.0.0\)"):
        lib.find("amf-upgrade@9.9.9")


def test_semver_order():
    versions = ["1.10.0", "1.2.0", "1.0.0-rc.1", "1.0.0", "1.0.0-rc.2", "0.9.0", "1.0.0-alpha"]
    assert sorted(versions, key=semver_key) == ["0.9.0", "1.0.0-alpha", "1.0.0-rc.1", "1.0.0-rc.2", "1.0.0",
                                                "1.2.0", "1.10.0"]


def test_cli_publish_list_show_lookup(tmp_path):
    root = tmp_path / "library"
    root.mkdir()
    env = {"CHANGELINE_MODEL_LIBRARY": str(root)}
    first = run_cli("models", "publish", str(draft(tmp_path)), env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith(f"amf-upgrade@1.0.0: published at {root}/amf/1.3/amf-upgrade.yaml")
    refused = run_cli("models", "publish", str(draft(tmp_path, extra="# changed\n")), env=env)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert ":9:3: metadata.version: amf-upgrade@1.0.0 is already published with different content" in refused.stderr
    listing = run_cli("models", "list", env=env)
    assert listing.returncode == 0
    assert listing.stdout.splitlines()[1].split() == ["amf-upgrade", "1.0.0", "UpgradeModel", "AMF", "1.2.0", "->",
                                                      "1.3.0", "ok", "amf/1.3/amf-upgrade.yaml"]
    shown = run_cli("models", "show", "amf-upgrade@1.0.0", env=env)
    assert shown.returncode == 0 and "kind: UpgradeModel" in shown.stdout
    assert shown.stdout.startswith("# amf-upgrade@1.0.0 UpgradeModel AMF 1.2.0 -> 1.3.0\n")
    found = run_cli("models", "lookup", "--type", "AMF", "--from", "1.2.0", "--to", "1.3.0", env=env)
    assert found.stdout.startswith("amf-upgrade@1.0.0\t")
    missing = run_cli("models", "show", "nope", env=env)
    assert missing.returncode == 2
    assert missing.stderr.splitlines() == ["error: no model named 'nope' is published (published: amf-upgrade)"]
