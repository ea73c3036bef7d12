"""The pure layer: the ``ml_platform.ledger/v1`` encoding pinned by a known answer, and what it hashes."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib

import pytest

from ml_platform.champions import GENESIS_HASH, LEDGER_SCHEME, LedgerEntry, compute_entry_hash
from ml_platform.champions.entry import canonical_bytes, format_time, parse_time
from ml_platform.errors import ConfigurationError

KNOWN_FIELDS = {
    "scheme": "ml_platform.ledger/v1", "model": "alpha_ridge", "seq": 2, "kind": "promotion",
    "from_version": "3", "to_version": "4", "actor": "promote_model run 0f3a", "approver": "bob@risk",
    "reason": "Sharpe +0.21 on the same dates; see report\nline two \u00e9",
    "report_ref": "mlflow-artifacts:/7/abc/artifacts/promotion/report.json", "report_sha256": "sha256:" + "a" * 64,
    "rationale_ref": "mlflow-artifacts:/7/abc/artifacts/promotion/rationale.md",
    "rationale_sha256": "sha256:" + "b" * 64, "override": True, "recorded_at": "2026-01-02T03:04:05.123456Z",
    "prev_hash": "sha256:" + "c" * 64,
}
KNOWN_BYTES = (
    b'{"actor":"promote_model run 0f3a","approver":"bob@risk","from_version":"3","kind":"promotion",'
    b'"model":"alpha_ridge","override":true,"prev_hash":"sha256:' + b"c" * 64 + b'",'
    b'"rationale_ref":"mlflow-artifacts:/7/abc/artifacts/promotion/rationale.md","rationale_sha256":"sha256:'
    + b"b" * 64 + b'","reason":"Sharpe +0.21 on the same dates; see report\\nline two \\u00e9",'
    b'"recorded_at":"2026-01-02T03:04:05.123456Z",'
    b'"report_ref":"mlflow-artifacts:/7/abc/artifacts/promotion/report.json","report_sha256":"sha256:'
    + b"a" * 64 + b'","scheme":"ml_platform.ledger/v1","seq":2,"to_version":"4"}'
)
KNOWN_DIGEST = "sha256:7c55495e342b6472e115125b58cba43dcb52d233d0eeac928d7740b19c37dde6"


def known_entry() -> LedgerEntry:
    values = {**KNOWN_FIELDS, "recorded_at": dt.datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=dt.UTC)}
    return LedgerEntry(**values, entry_hash=KNOWN_DIGEST)


def test_known_answer_pins_the_v1_encoding_and_digest() -> None:
    assert LEDGER_SCHEME == "ml_platform.ledger/v1"
    assert GENESIS_HASH == "sha256:" + "0" * 64
    assert canonical_bytes(dict(KNOWN_FIELDS)) == KNOWN_BYTES
    assert "sha256:" + hashlib.sha256(KNOWN_BYTES).hexdigest() == KNOWN_DIGEST
    assert compute_entry_hash(dict(KNOWN_FIELDS)) == KNOWN_DIGEST
    assert known_entry().expected_hash == KNOWN_DIGEST


def test_time_is_hashed_in_utc_whatever_the_zone_given() -> None:
    paris = dt.timezone(dt.timedelta(hours=1))
    entry = dataclasses.replace(known_entry(), recorded_at=dt.datetime(2026, 1, 2, 4, 4, 5, 123456, tzinfo=paris))
    assert entry.expected_hash == KNOWN_DIGEST
    assert parse_time(format_time(entry.recorded_at)) == known_entry().recorded_at
    with pytest.raises(ConfigurationError, match="timezone-aware"):
        format_time(dt.datetime(2026, 1, 2))
    for bad in ("2026-01-02T03:04:05Z", "2026-01-02 03:04:05.123456Z", "2026-01-02T03:04:05.123456+00:00"):
        with pytest.raises(ValueError, match="not a ledger time"):
            parse_time(bad)


@pytest.mark.parametrize("field", [f for f in KNOWN_FIELDS if f != "scheme"])
def test_every_field_is_hashed(field: str) -> None:
    changed = dict(KNOWN_FIELDS)
    value = changed[field]
    changed[field] = (not value if isinstance(value, bool) else value + 1 if isinstance(value, int)
                      else None if field == "approver" else value.replace("0", "1").replace("a", "b") + "x")
    assert compute_entry_hash(changed) != KNOWN_DIGEST


def test_encoding_refuses_missing_extra_fields_and_unknown_schemes() -> None:
    with pytest.raises(ConfigurationError, match=r"missing \['prev_hash'\]"):
        canonical_bytes({k: v for k, v in KNOWN_FIELDS.items() if k != "prev_hash"})
    with pytest.raises(ConfigurationError, match=r"extra \['entry_hash'\]"):
        canonical_bytes({**KNOWN_FIELDS, "entry_hash": KNOWN_DIGEST})
    with pytest.raises(ConfigurationError, match="upgrade ml_platform"):
        canonical_bytes({**KNOWN_FIELDS, "scheme": "ml_platform.ledger/v2"})
