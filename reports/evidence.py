"""The per-NE evidence pack: what an auditor needs to see one NE's change, as plain files.

`<out>/evidence/<ne>/` holds the pre- and post-change config, their diff and every step's
diff, dial-test, probe and CDR results, the NE's journal entries and its outcome, with a
manifest naming each file's sha256 and what it is.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import shutil
from pathlib import Path
from typing import Any

from changeline.devices.configxml import diff, pretty
from changeline.reports.records import Configs, NEJournal
from changeline.reports.redact import redact, redact_text

MANIFEST = "manifest.json"


def safe_name(name: str) -> str:
    """A file or directory name from an NE or step name (never a path, never hidden)."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name).lstrip(".")
    return cleaned or "_"


def _config_text(config: bytes) -> str:
    try:
        return pretty(config)
    except Exception:  # not XML we can parse: keep it as the NE gave it
        return config.decode("utf-8", errors="replace")


def config_diff(configs: Configs) -> str:
    """Unified diff of the pre- and post-change running config ('' when equal or unknown)."""
    if configs.before is None or configs.after is None:
        return ""
    try:
        return diff(configs.before, configs.after, before_name="before (backup)", after_name="after (committed)")
    except Exception as err:  # an unparsable config must not cost the whole report
        return f"(no diff: {err})\n"


def cdr_csv(records: list[dict[str, Any]]) -> str:
    columns: list[str] = []
    for record in records:
        columns += [k for k in record if k not in columns]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return out.getvalue()


class Pack:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.files: list[dict[str, str]] = []

    def write(self, name: str, content: str | bytes, what: str) -> None:
        data = content.encode() if isinstance(content, str) else content
        path = self.folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        self.files.append({"file": name, "sha256": hashlib.sha256(data).hexdigest(), "what": what})

    def json(self, name: str, data: Any, what: str) -> None:
        self.write(name, json.dumps(redact(data), indent=2, default=str, sort_keys=False) + "\n", what)


def write_pack(folder: Path, outcome: dict[str, Any], entry: dict[str, Any], journal: NEJournal, configs: Configs,
               pool_probe: dict[str, Any] | None) -> list[dict[str, str]]:
    """Write one NE's pack (replacing an earlier one) and return its manifest entries.

    `outcome` is the NE's outcome as stored; `entry` its entry in the report (dial tests
    and billing checks gathered from the steps).
    """
    if (folder / MANIFEST).is_file():
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    pack = Pack(folder)
    pack.json("outcome.json", outcome, "the NE's outcome as the run recorded it (NEOutcome)")
    pack.json("journal.json", journal.to_dict(),
              "durable journal: NE status, baseline, mutating steps with undo records and undo results, step progress")
    if configs.backup is not None:
        pack.json("backup.json", configs.backup.__dict__, "the backup record this run took before changing the NE")
    if configs.before is not None:
        pack.write("config-before.xml", redact_text(_config_text(configs.before)),
                   "running config before the change (from the backup store)")
    if configs.after is not None:
        rolled_back = outcome.get("status") == "rolled-back"
        pack.write("config-after.xml", redact_text(_config_text(configs.after)),
                   "running config the run's changes committed (from the backup store)"
                   + ("; since rolled back, the NE runs config-before.xml again" if rolled_back else ""))
    whole = config_diff(configs)
    if whole:
        pack.write("config-before-after.diff", redact_text(whole), "diff of the two configs above")
    if configs.problems:
        pack.json("config-problems.json", configs.problems, "configs the backup store could not give back")
    for i, step in enumerate(outcome.get("steps") or [], 1):
        if step.get("diff"):
            pack.write(f"diffs/{i:02d}-{safe_name(step['name'])}.diff", redact_text(step["diff"]),
                       f"config diff of step {step['name']} ({step['atom']})")
    rollback = outcome.get("rollback") or {}
    for i, undone in enumerate(rollback.get("undone") or [], 1):
        if undone.get("diff"):
            pack.write(f"diffs/rollback-{i:02d}-{safe_name(undone.get('atom', 'undo'))}.diff",
                       redact_text(undone["diff"]), f"config restored by {undone.get('atom', 'undo')} in the rollback")
    if (rollback.get("verified") or {}).get("diff"):
        pack.write("diffs/rollback-restore.diff", redact_text(rollback["verified"]["diff"]),
                   "config the rollback restored to match the backup")
    if entry.get("dial_tests"):
        pack.json("dial-tests.json", entry["dial_tests"], "dial-test scenario results before/after the change and after a rollback")
    if entry.get("billing"):
        pack.json("billing.json", entry["billing"], "billing checks: expected charging ids and the CDR records found")
        records = [r for check in entry["billing"] for r in check.get("records") or []]
        if records:
            pack.write("cdrs.csv", cdr_csv(redact(records)), "the CDR records the billing checks found")
    if pool_probe is not None:
        pack.json("service-probes.json", pool_probe, "probe calls through the NE's traffic pool during the whole run")
    manifest = sorted(pack.files, key=lambda f: f["file"])
    (folder / MANIFEST).write_text(json.dumps({"ne": outcome["ne"], "files": manifest}, indent=2) + "\n")
    return manifest
