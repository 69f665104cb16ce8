"""Secrets stay out of reports, in data and in configuration text."""

from __future__ import annotations

import pytest

from changeline.reports.redact import MASK, is_secret_name, redact, redact_text


@pytest.mark.parametrize("name", ["password", "Password", "snmp-community", "password_hash", "api_key", "token",
                                  "private-key", "auth:secret", "psk", "credentials"])
def test_secret_names(name):
    assert is_secret_name(name)


@pytest.mark.parametrize("name", ["bypass", "passed", "charging_id", "backup_id", "persist_id", "keyword",
                                  "running_sha256", "tokens_per_s", "pool", "key"])
def test_ordinary_names(name):
    assert not is_secret_name(name)


def test_redact_masks_secret_values_at_any_depth_and_keeps_the_rest():
    data = {"ne": "amf-1", "evidence": {"users": [{"name": "ops", "password": "hunter2"}], "passed": True},
            "token": "", "community": None}
    assert redact(data) == {"ne": "amf-1", "evidence": {"users": [{"name": "ops", "password": MASK}], "passed": True},
                            "token": "", "community": None}


def test_redact_text_masks_secret_elements_in_config_and_diffs():
    text = ("<user><name>ops</name><password>$6$abc</password></user>\n"
            "-  <snmp:community-string xmlns:snmp=\"urn:x\">public</snmp:community-string>\n"
            "+  <t3512>3600</t3512>\n<password/>")
    out = redact_text(text)
    assert "$6$abc" not in out and "public" not in out
    assert f"<password>{MASK}</password>" in out
    assert f'<snmp:community-string xmlns:snmp="urn:x">{MASK}</snmp:community-string>' in out
    assert "<t3512>3600</t3512>" in out and "<name>ops</name>" in out
