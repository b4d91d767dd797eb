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
from service.startup import StartupError, check_database, prepare_data_dir
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


def test_a_data_dir_that_is_a_file(tmp_path: Path) -> None:
    target = tmp_path / "state"
    target.write_text("not a directory")
    with pytest.raises(StartupError, match=rf"data directory {target} is a file"):
        prepare_data_dir(target, create=True)


def test_a_data_dir_under_a_file_names_the_file(tmp_path: Path) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("")
    target = blocker / "deeper" / "data"
    with pytest.raises(StartupError) as exc:
        prepare_data_dir(target, create=True)
    assert str(exc.value) == f"data directory {target} cannot exist: {blocker} is a file"
    assert not target.exists()


def test_only_a_caller_that_may_create_the_data_dir_does(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b"
    with pytest.raises(StartupError, match="does not exist"):
        prepare_data_dir(target, create=False)
    assert not (tmp_path / "a").exists(), "a refused data dir must leave nothing behind"
    prepare_data_dir(target, create=True)
    assert target.is_dir() and mode(target) == 0o700
    assert list(target.iterdir()) == [], "the writability probe must not stay behind"
    prepare_data_dir(target, create=False)  # now it exists


def test_a_corrupt_database_is_named(tmp_path: Path) -> None:
    check_database(tmp_path)  # none yet: nothing to check
    KeyStore(tmp_path / "switchyard.db").close()
    check_database(tmp_path)  # a real one passes
    (tmp_path / "switchyard.db").write_bytes(os.urandom(8192))
    for sidecar in tmp_path.glob("switchyard.db-*"):
        sidecar.unlink()
    with pytest.raises(StartupError) as exc:
        check_database(tmp_path)
    assert f"database {tmp_path / 'switchyard.db'} is unreadable" in str(exc.value)
    assert "file is not a database" in str(exc.value)
