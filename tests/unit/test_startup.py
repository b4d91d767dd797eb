"""Start-up checks (service/startup.py) and the modes of the state files the gateway makes."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from service.accounting.ledger import Generation, Ledger
from service.store.keys import KeyStore

GEN = Generation(
    id="gen-1", key_id="", model="m", provider="p", upstream_model="u", kind="chat",
    created_at=1.0, prompt_tokens=3, completion_tokens=4, cost=0.25, latency_ms=1.0,
    generation_time_ms=2.0, finish_reason="stop", streamed=False, cancelled=False,
)  # fmt: skip


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """The umask most shells have: files 0644 unless their creator says otherwise."""
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.mark.usefixtures("loose_umask")
def test_the_database_and_its_journals_are_private(tmp_path: Path) -> None:
    database = tmp_path / "switchyard.db"
    keys = KeyStore(database, cache_seconds=0)
    record, _ = keys.create("k")
    ledger = Ledger(database)

    async def book() -> None:
        ledger.record_now(replace(GEN, key_id=record.id))
        await asyncio.sleep(0)

    asyncio.run(book())
    files = [p for p in tmp_path.iterdir() if p.name.startswith("switchyard.db")]
    files += list((tmp_path / "ledger-journal").iterdir())
    assert any(p.name.endswith("-wal") for p in files), files
    assert any(p.suffix == ".jsonl" for p in files), "the ledger made no journal"
    for path in files:
        assert mode(path) == 0o600, f"{path.name} is {oct(mode(path))}"
    assert mode(tmp_path / "ledger-journal") == 0o700
    ledger.close()
    keys.close()


@pytest.mark.usefixtures("loose_umask")
def test_a_database_made_readable_by_an_older_release_is_tightened(tmp_path: Path) -> None:
    database = tmp_path / "switchyard.db"
    KeyStore(database, cache_seconds=0).close()
    for path in tmp_path.iterdir():
        path.chmod(0o644)
    KeyStore(database, cache_seconds=0).close()
    assert mode(database) == 0o600
    assert all(mode(p) == 0o600 for p in tmp_path.glob("switchyard.db*"))
