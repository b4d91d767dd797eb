"""Both key stores (SQLite's KeyStore, PostgreSQL's PgKeyStore) offer what the gate, the
servicers, the launcher and the CLI ask of a key store (KeyStoreBackend), with the same
signatures: the backends seam hands either one out where the other was expected."""

from __future__ import annotations

import inspect

import pytest

from service.accounting.backends import KeyBackend, KeyStoreBackend
from service.store.keys import KeyStore
from service.store.pg_keys import PgKeyStore

MEMBERS = sorted(
    name
    for protocol in (KeyBackend, KeyStoreBackend)
    for name in (*vars(protocol), *getattr(protocol, "__annotations__", {}))
    if not name.startswith("_")
)


def test_the_protocol_covers_what_the_callers_use() -> None:
    # the servicers' and the pipeline's, then the launcher's and the CLI's and Redis's
    used = {"verify", "create", "get", "list", "update", "add_credits", "delete"}
    used |= {"insert", "count", "has_admin", "find_by_secret", "revoke", "close"}
    used |= {"forget", "on_change"}
    assert used <= set(MEMBERS)


@pytest.mark.parametrize("name", MEMBERS)
@pytest.mark.parametrize("store", [KeyStore, PgKeyStore], ids=["sqlite", "postgres"])
def test_each_store_has_the_member_with_the_protocols_signature(store: type, name: str) -> None:
    declared = getattr(KeyStoreBackend, name, None)
    if declared is None or not callable(declared):  # an attribute: set in __init__
        assert f"self.{name}: " in inspect.getsource(store), f"{store.__name__}.{name} unset"
        return
    assert inspect.signature(getattr(store, name)) == inspect.signature(declared)
