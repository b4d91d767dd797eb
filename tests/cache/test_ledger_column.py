"""The ledger's `cache` column: added to a ledger made before it, replayed from journals
written before it, and read back with the rest of the row."""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import replace
from pathlib import Path

import orjson

from service.accounting.ledger import SCHEMA, Generation, Ledger
from service.store.keys import KeyStore

GEN = Generation(
    id="gen-1", key_id="", model="m", provider="p", upstream_model="u", kind="chat",
    created_at=1.0, prompt_tokens=3, completion_tokens=4, cost=0.25, latency_ms=1.0,
    generation_time_ms=2.0, finish_reason="stop", streamed=True, cancelled=False,
)  # fmt: skip


def test_an_old_ledger_gets_the_column_and_old_journals_replay(tmp_path: Path) -> None:
    database = tmp_path / "switchyard.db"
    KeyStore(database, cache_seconds=0).close()
    old = sqlite3.connect(database)
    old.executescript(SCHEMA.replace(",\n    cache TEXT NOT NULL DEFAULT ''", ""))
    columns = [row[1] for row in old.execute("PRAGMA table_info(generations)")]
    assert "cache" not in columns  # the ledger as it was before the cache
    old.close()
    journal = tmp_path / "ledger-journal"
    journal.mkdir()
    line = list(orjson.loads(orjson.dumps([getattr(GEN, f) for f in GEN.__slots__])))[:-1]
    (journal / "dead.jsonl").write_bytes(orjson.dumps(line) + b"\n")  # 15 values, no cache

    ledger = Ledger(database)
    try:
        replayed = ledger.get("gen-1")
        assert replayed is not None and replayed.cache == "" and replayed.streamed is True

        async def record() -> None:
            ledger.record_now(replace(GEN, id="gen-2", cache="semantic-hit"))
            await asyncio.sleep(0)  # the writer is woken on the loop's next turn

        asyncio.run(record())
        assert ledger.flush()
        stored = ledger.get("gen-2")
        assert stored is not None and stored.cache == "semantic-hit" and stored.streamed is True
    finally:
        ledger.close()
