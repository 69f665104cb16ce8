"""Keep credentials out of reports and evidence packs.

The run's records hold none today (inventories refuse clear-text passwords and atoms do
not put them in evidence), but an NE's own configuration may carry secrets - SNMP
communities, RADIUS keys, local users' password hashes - and a report gets mailed around.
Anything named like a secret is masked, in data and in configuration text alike.
"""

from __future__ import annotations

import re
from typing import Any

MASK = "***"
_SECRET_WORDS = r"pass(?:word|phrase|wd)?|secret|token|private[-_]?key|api[-_]?key|pre[-_]?shared[-_]?key|psk|" \
                r"community|credentials?|auth[-_]?key|priv[-_]?key"
# A key whose name is, starts with or ends with a secret word (`password`, `snmp-community`,
# `password_hash`), but not a word that merely contains one (`bypass`).
SECRET_NAME = re.compile(rf"(?:^|[-_:.])(?:{_SECRET_WORDS})(?:$|[-_.])", re.IGNORECASE)
# <password>x</password>, <snmp:community-string ...>x</snmp:community-string>
_SECRET_ELEMENT = re.compile(r"<((?:[\w.-]+:)?([\w.-]+))(\s[^<>]*)?>([^<]*)</\1>")


def is_secret_name(name: str) -> bool:
    return bool(SECRET_NAME.search(str(name)))


def redact(data: Any) -> Any:
    """A copy of JSON-like data with the values of secret-named keys masked."""
    if isinstance(data, dict):
        return {k: MASK if is_secret_name(k) and v not in (None, "") else redact(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [redact(v) for v in data]
    if isinstance(data, str) and "<" in data:
        return redact_text(data)
    return data


def redact_text(text: str) -> str:
    """Configuration XML (or a diff of it) with the text of secret-named elements masked."""
    def mask(m: re.Match) -> str:
        if not is_secret_name(m.group(2)) or not m.group(4).strip():
            return m.group(0)
        return f"<{m.group(1)}{m.group(3) or ''}>{MASK}</{m.group(1)}>"

    return _SECRET_ELEMENT.sub(mask, text)
