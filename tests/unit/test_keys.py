"""API keys: service/auth/keys.py (format, hashing, bearer parsing) and the SQLite store."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

import service.auth.keys as keys_module
from service.auth.keys import KEY_PREFIX, bearer_token, display_prefix, hash_key, new_key
from service.store.keys import KeyStore


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "keys.db"  # the parent folder does not exist yet


@pytest.fixture
def store(db_path: Path) -> Iterator[KeyStore]:
    keys = KeyStore(db_path, cache_seconds=0)
    yield keys
    keys.close()


def test_new_keys_are_prefixed_random_and_long() -> None:
    keys = {new_key() for _ in range(50)}
    assert len(keys) == 50
    for key in keys:
        assert key.startswith("sk-sy-")
        assert KEY_PREFIX == "sk-sy-"
        assert len(key) >= len(KEY_PREFIX) + 43  # 32 random bytes, base64url


def test_hash_and_display() -> None:
    assert hash_key("sk-sy-abc") == hashlib.sha256(b"sk-sy-abc").hexdigest()
    assert display_prefix("sk-sy-abcdefghijklmnop") == "sk-sy-abcdef..."


def test_the_hash_is_sha256_from_cpythons_own_module() -> None:
    # Stored hashes must not change with the implementation: same digest as OpenSSL's.
    for plain in ("", "sk-sy-x", new_key(), "k\u00e9y"):
        assert hash_key(plain) == hashlib.sha256(plain.encode()).hexdigest()
    # ... computed by CPython's small built-in SHA-256, not OpenSSL's (cold-cache cost).
    assert keys_module._sha256 is not hashlib.sha256
    assert keys_module._sha256.__module__ in ("_sha2", "_sha256")


def test_create_then_verify(store: KeyStore) -> None:
    record, plain = store.create("ci")
    assert plain.startswith("sk-sy-")
    assert record.id.startswith("key_")
    assert record.name == "ci"
    assert record.active
    assert store.verify(plain) == record
    assert store.count() == 1


def test_list_shows_the_display_prefix_never_the_secret(store: KeyStore) -> None:
    first, plain1 = store.create("first")
    second, plain2 = store.create("second")
    listed = store.list()
    assert listed == [first, second]
    assert [r.display for r in listed] == [plain1[:12] + "...", plain2[:12] + "..."]
    for plain in (plain1, plain2):
        assert all(plain not in repr(r) for r in listed)
        assert all(plain[12:] not in repr(r) for r in listed)


def test_the_database_holds_the_hash_not_the_key(db_path: Path) -> None:
    store = KeyStore(db_path, cache_seconds=0)
    _, plain = store.create("ci")
    store.close()  # checkpoints the WAL into the main file
    files = sorted(db_path.parent.glob(db_path.name + "*"))
    assert db_path in files
    everything = b"".join(path.read_bytes() for path in files)
    assert plain.encode() not in everything
    assert plain[len(KEY_PREFIX) :].encode() not in everything
    assert hashlib.sha256(plain.encode()).hexdigest().encode() in db_path.read_bytes()


def test_revoke(store: KeyStore) -> None:
    record, plain = store.create("ci")
    other, other_plain = store.create("other")
    assert store.verify(plain) is not None
    assert store.revoke(record.id) is True
    assert store.verify(plain) is None
    assert store.verify(other_plain) == other
    assert store.revoke(record.id) is False  # already revoked
    assert store.revoke("key_doesnotexist") is False
    revoked = {r.id: r for r in store.list()}[record.id]
    assert revoked.revoked_at is not None
    assert not revoked.active


def test_revoke_clears_the_cache(db_path: Path) -> None:
    store = KeyStore(db_path, cache_seconds=3600)
    try:
        record, plain = store.create("ci")
        assert store.verify(plain) == record  # now cached
        assert store.revoke(record.id)
        assert store.verify(plain) is None
    finally:
        store.close()


def test_unknown_keys_are_refused(store: KeyStore) -> None:
    _, plain = store.create("ci")
    assert store.verify(new_key()) is None
    assert store.verify("") is None
    assert store.verify(plain + "x") is None
    assert store.verify(plain[:-1]) is None
    assert store.verify(hash_key(plain)) is None  # the stored hash is not a credential


def test_keys_survive_a_reopen(db_path: Path) -> None:
    first = KeyStore(db_path, cache_seconds=0)
    record, plain = first.create("ci")
    first.close()
    second = KeyStore(db_path, cache_seconds=0)
    try:
        assert second.verify(plain) == record
    finally:
        second.close()


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer sk-sy-abc", "sk-sy-abc"),
        ("bearer sk-sy-abc", "sk-sy-abc"),
        ("BEARER sk-sy-abc", "sk-sy-abc"),
        ("  Bearer   sk-sy-abc  ", "sk-sy-abc"),
        ("Basic dXNlcjpwYXNz", None),
        ("Bearer ", None),
        ("Bearer", None),
        ("Bearer    ", None),
        ("", None),
        ("sk-sy-abc", None),
    ],
)
def test_bearer_token(header: str, token: str | None) -> None:
    assert bearer_token(header) == token
