"""SQLite's KeyStore and PostgreSQL's PgKeyStore answer alike: the same calls on each
(the PostgreSQL one on a real server the test starts) give the same records."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from service.accounting.backends import KeyStoreBackend
from service.store.keys import KeyPolicy, KeyStore
from service.store.pg_keys import PgKeyStore, open_pool
from tests.fixtures.servers import PostgresServer
from tests.unit.test_key_records import EVERY_FIELD

# Every policy field set to other than its default, and still a key that may be used.
POLICY = replace(EVERY_FIELD, disabled=False, is_admin=False, expires_at=time.time() + 3600)


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer().start()
    yield server
    server.remove()


@pytest.fixture(params=["sqlite", "postgres"])
def store(
    request: pytest.FixtureRequest, tmp_path: Path, postgres: PostgresServer
) -> Iterator[KeyStoreBackend]:
    keys: KeyStoreBackend
    if request.param == "sqlite":
        keys = KeyStore(tmp_path / "switchyard.db", cache_seconds=0)
    else:
        keys = PgKeyStore(open_pool(postgres.fresh_database(), 2), cache_seconds=0)
    yield keys
    keys.close()


def test_create_read_change_and_remove_a_key(store: KeyStoreBackend) -> None:
    assert store.count() == 0 and not store.has_admin()
    record, plain = store.create("team", POLICY)
    admin, _ = store.insert("admin", "sk-sy-chosen-by-the-operator", KeyPolicy(is_admin=True))
    assert store.count() == 2 and store.has_admin()
    got = store.get(record.id)
    assert got == record and got is not None and got.policy == POLICY
    assert got.usage == 0.0 and set(got.period_usage.values()) == {0.0}
    assert store.verify(plain) == record
    assert store.find_by_secret("sk-sy-chosen-by-the-operator") == admin
    assert store.verify("sk-sy-not-a-key") is None
    assert [k.id for k in store.list()] == [record.id, admin.id]

    changed = store.update(record.id, {"name": "renamed", "rpm": None, "allowed_models": ("a",)})
    assert changed is not None and changed.name == "renamed"
    assert changed.policy.rpm is None and changed.policy.allowed_models == ("a",)
    with pytest.raises(ValueError, match="usage"):
        store.update(record.id, {"usage": 0.0})
    credited = store.add_credits(record.id, 1.5)
    assert credited is not None and credited.policy.credit_limit == pytest.approx(4.0)

    assert store.revoke(record.id) and not store.revoke(record.id)
    assert store.verify(plain) is None
    revoked = store.get(record.id)
    assert revoked is not None and revoked.revoked_at is not None
    assert store.delete(record.id) and not store.delete(record.id)
    assert store.get(record.id) is None and store.count() == 1
