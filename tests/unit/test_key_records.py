"""service/store/key_records.py: the one mapping between a key's record and its row, and
the statements both key stores (SQLite, PostgreSQL) run, made for either placeholder."""

from __future__ import annotations

from dataclasses import replace

import pytest

from service.auth.keys import hash_key
from service.store.key_records import (
    POLICY_FIELDS,
    KeyPolicy,
    KeySql,
    new_record,
    record_from_row,
)

EVERY_FIELD = KeyPolicy(
    credit_limit=2.5,
    rpm=7,
    tpm=900,
    max_concurrent=3,
    allowed_models=("openai/*", "local/*"),
    expires_at=1_900_000_000.0,
    disabled=True,
    is_admin=True,
    limit_reset="weekly",
)
PERIODS = ("d:2026-12-04", "w:2026-11-30", "m:2026-12")
SQLITE, POSTGRES = KeySql("?"), KeySql("%s")


def test_every_policy_field_survives_the_row_and_back() -> None:
    assert {f for f in POLICY_FIELDS if getattr(EVERY_FIELD, f) == getattr(KeyPolicy(), f)} == set()
    plain = "sk-sy-abcdefSECRETTAIL"
    record, params = new_record("team", plain, EVERY_FIELD)
    key_id, name, key_hash, display, created_at, *policy = params
    assert key_hash == hash_key(plain) and "SECRET" not in display  # hashed, shown cut
    assert policy[POLICY_FIELDS.index("allowed_models")] == '["openai/*", "local/*"]'
    assert policy[POLICY_FIELDS.index("disabled")] == 1
    row = (key_id, name, display, created_at, None, 1.25, *policy, 0.5, None, 1.0)
    back = record_from_row(row, PERIODS)
    assert back == replace(record, usage=1.25)
    assert back.policy == EVERY_FIELD
    assert dict(back.period_usage) == {PERIODS[0]: 0.5, PERIODS[1]: 0.0, PERIODS[2]: 1.0}


def test_both_drivers_run_the_same_statements_but_for_the_mark() -> None:
    changes = {"name": "n", "rpm": 5, "allowed_models": ("a/*",)}
    pairs = [
        (SQLITE.select(SQLITE.by_id), POSTGRES.select(POSTGRES.by_id), len(PERIODS) + 1),
        (SQLITE.verify, POSTGRES.verify, len(PERIODS) + 1),
        (SQLITE.insert, POSTGRES.insert, len(new_record("n", "p", None)[1])),
        (SQLITE.add_credits, POSTGRES.add_credits, 2),
        (SQLITE.revoke, POSTGRES.revoke, 2),
        (SQLITE.delete, POSTGRES.delete, 1),
        (SQLITE.update("k", changes)[0], POSTGRES.update("k", changes)[0], len(changes) + 1),
    ]
    for sqlite, postgres, params in pairs:
        assert sqlite.replace("?", "%s") == postgres
        assert sqlite.count("?") == params, sqlite
    assert SQLITE.update("k", changes)[1] == ("n", 5, '["a/*"]', "k")


def test_an_unknown_field_is_refused_before_any_statement() -> None:
    with pytest.raises(ValueError, match="usage"):
        SQLITE.update("k", {"usage": 0})
