"""The ledger's journal: what a killed process wrote is replayed once, never twice."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from dataclasses import replace
from pathlib import Path

import orjson
import pytest

from service.accounting import ledger as ledger_module
from service.accounting.journal import Journal, records
from service.accounting.ledger import Generation, Ledger, _row
from service.store.keys import KeyStore

GEN = Generation(
    id="gen-1", key_id="", model="m", provider="p", upstream_model="u", kind="chat",
    created_at=1.0, prompt_tokens=3, completion_tokens=4, cost=0.25, latency_ms=1.0,
    generation_time_ms=2.0, finish_reason="stop", streamed=False, cancelled=False,
)  # fmt: skip


def _burst(ledger: Ledger, key_id: str, ids: range) -> None:
    """`record_now` rows gen-<i> back to back, as requests finishing together do."""

    async def burst() -> None:
        for i in ids:
            ledger.record_now(replace(GEN, id=f"gen-{i}", key_id=key_id))
        await asyncio.sleep(0)  # the writer is woken on the loop's next turn

    asyncio.run(burst())


def test_journal_of_a_dead_process_is_replayed_once(tmp_path: Path) -> None:
    database = tmp_path / "switchyard.db"
    keys = KeyStore(database, cache_seconds=0)
    record, _ = keys.create("k")
    journal = tmp_path / "ledger-journal"
    journal.mkdir()
    rows = [replace(GEN, id=f"gen-{i}", key_id=record.id) for i in range(3)]
    lines = b"".join(orjson.dumps(_row(g)) + b"\n" for g in rows)
    # pid 2**22 + 1 is above Linux's pid_max: no such process. The last line is torn.
    (journal / f"{2**22 + 1}-dead.jsonl").write_bytes(lines + b'["gen-torn", "')

    ledger = Ledger(database)
    try:
        assert [ledger.get(f"gen-{i}") for i in range(3)] == rows
        assert ledger.get("gen-torn") is None
    finally:
        ledger.close()
    assert not list(journal.glob(f"{2**22 + 1}-*"))  # replayed, then removed
    assert keys.get(record.id).usage == 0.75  # type: ignore[union-attr]

    (journal / f"{2**22 + 1}-again.jsonl").write_bytes(lines)  # the same rows once more
    Ledger(database).close()
    assert keys.get(record.id).usage == 0.75  # type: ignore[union-attr]  # not twice
    keys.close()


def test_recorded_rows_are_readable_at_once_and_committed_on_close(tmp_path: Path) -> None:
    database = tmp_path / "switchyard.db"
    keys = KeyStore(database, cache_seconds=0)
    record, _ = keys.create("k")
    ledger = Ledger(database)
    generation = replace(GEN, key_id=record.id)
    asyncio.run(ledger.record(generation))
    assert ledger.get(generation.id) == generation  # pending or committed, never missing
    ledger.close()
    reopened = Ledger(database)
    try:
        assert reopened.get(generation.id) == generation
    finally:
        reopened.close()
    assert keys.get(record.id).usage == 0.25  # type: ignore[union-attr]
    assert not list((tmp_path / "ledger-journal").glob("*.jsonl"))  # a clean stop leaves none
    keys.close()


def test_slow_rows_commit_soon_fast_rows_gather_and_close_cuts_the_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    commits: list[int] = []
    commit = Ledger._commit

    def counted(db: object, generations: list[Generation]) -> bool:
        commits.append(len(generations))
        return commit(db, generations)  # type: ignore[arg-type]

    monkeypatch.setattr(Ledger, "_commit", staticmethod(counted))
    monkeypatch.setattr(ledger_module, "SHORT_WINDOW", 0.05)
    monkeypatch.setattr(ledger_module, "BATCH_WINDOW", 3600.0)  # only close() ends it
    monkeypatch.setattr(ledger_module, "BUSY_ROWS", 3)
    database = tmp_path / "switchyard.db"
    keys = KeyStore(database, cache_seconds=0)
    record, _ = keys.create("k")
    ledger = Ledger(database)

    _burst(ledger, record.id, range(2))  # fewer than BUSY_ROWS: after the short window
    assert ledger.flush(timeout=10)
    assert commits == [2]
    _burst(ledger, record.id, range(2, 5))  # BUSY_ROWS of them: they wait for the long one
    assert not ledger.flush(timeout=0.3)
    assert commits == [2]
    ledger.close()  # inside the hour-long window: drains at once (or gives up after 30 s)
    assert commits == [2, 3]
    assert keys.get(record.id).usage == 1.25  # type: ignore[union-attr]
    keys.close()


def test_a_backlog_is_committed_back_to_back_not_one_batch_per_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ledger_module, "BATCH_WINDOW", 0.5)
    monkeypatch.setattr(ledger_module, "BUSY_ROWS", 3)
    monkeypatch.setattr(ledger_module, "MAX_BATCH", 1)
    database = tmp_path / "switchyard.db"
    keys = KeyStore(database, cache_seconds=0)
    record, _ = keys.create("k")
    ledger = Ledger(database)

    _burst(ledger, record.id, range(6))
    # One window (0.5 s), then six one-row commits at once; a window per batch is 3 s.
    assert ledger.flush(timeout=2.0)
    ledger.close()
    assert keys.get(record.id).usage == 1.5  # type: ignore[union-attr]
    keys.close()


def test_journal_rotates_and_rotated_files_go_once_committed(tmp_path: Path) -> None:
    database = tmp_path / "switchyard.db"
    keys = KeyStore(database, cache_seconds=0)
    record, _ = keys.create("k")
    ledger = Ledger(database, journal_bytes=1024)  # a few rows per journal file

    async def write() -> None:
        for i in range(20):
            await ledger.record(replace(GEN, id=f"gen-{i}", key_id=record.id, cost=0.5))

    asyncio.run(write())
    assert ledger.flush()
    journals = tmp_path / "ledger-journal"
    time.sleep(0.05)  # the writer deletes a rotated file right after its commit
    assert len(list(journals.glob("*.jsonl"))) == 1, "only the current journal is left"
    ledger.close()
    assert not list(journals.glob("*.jsonl"))
    assert keys.get(record.id).usage == 10.0  # type: ignore[union-attr]
    keys.close()


def test_journal_append_fills_then_refuses(tmp_path: Path) -> None:
    journal = Journal(tmp_path, size=16)
    assert journal.append(b"0123456\n") and journal.append(b"abcdefg\n")
    assert not journal.append(b"x\n")
    journal.close()
    assert records(journal.path) == [b"0123456", b"abcdefg"]


def test_cache_columns_are_added_and_old_journals_replay(tmp_path: Path) -> None:
    """A database made before the cache columns gains them; a journal line written
    before them (15 values) still replays, with no cache tokens."""
    database = tmp_path / "switchyard.db"
    old = sqlite3.connect(database)
    old_schema = ledger_module.SCHEMA.replace(
        ",\n    cached_tokens INTEGER NOT NULL DEFAULT 0,\n"
        "    cache_write_tokens INTEGER NOT NULL DEFAULT 0",
        "",
    )
    assert "cached_tokens" not in old_schema
    old.executescript(old_schema)
    old.close()
    KeyStore(database, cache_seconds=0)  # the spend column the ledger updates
    journal = tmp_path / "ledger-journal"
    journal.mkdir()
    line = orjson.dumps(_row(replace(GEN, id="gen-old"))[:15]) + b"\n"
    (journal / f"{2**22 + 1}-dead.jsonl").write_bytes(line)

    ledger = Ledger(database)
    try:
        assert ledger.get("gen-old") == replace(GEN, id="gen-old")
        cached = replace(GEN, id="gen-new", cached_tokens=2, cache_write_tokens=1)

        async def record() -> None:
            ledger.record_now(cached)
            await asyncio.sleep(0)  # the writer is woken on the loop's next turn

        asyncio.run(record())
        assert ledger.flush()
        assert ledger.get("gen-new") == cached
    finally:
        ledger.close()
    again = Ledger(database)
    try:
        assert again.get("gen-new") == cached  # read back from SQLite, not the queue
    finally:
        again.close()
