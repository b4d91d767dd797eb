"""The usage rollup and its reads agree with the ledger they summarise, row by row, in
both stores: SQLite (usage_sqlite.py) and PostgreSQL (service/store/pg_usage.py), whose
writers maintain the rollups and whose reads must give the same answers."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from service.accounting import usage_sqlite
from service.accounting.backends import UsageBackend
from service.accounting.ledger import SCHEMA, Generation, Ledger, _row
from service.accounting.usage import BIN_BOUNDS, GenerationFilter, latency_bin, percentile
from service.store import pg_ledger, pg_schema
from service.store.keys import KeyStore
from service.store.pg_keys import open_pool
from service.store.pg_ledger import PgLedger
from service.store.pg_usage import PgUsage
from tests.fixtures.servers import PostgresServer

GEN = Generation(
    id="", key_id="k", model="m", provider="p", upstream_model="u", kind="chat",
    created_at=0.0, prompt_tokens=0, completion_tokens=0, cost=0.0, latency_ms=0.0,
    generation_time_ms=0.0, finish_reason="stop", streamed=False, cancelled=False,
)  # fmt: skip
NOW = 1_800_000_000.0


def _database(path: Path) -> sqlite3.Connection:
    KeyStore(path).close()  # the keys' table, which the ledger adds spending to
    db = sqlite3.connect(path, isolation_level=None)
    db.executescript(SCHEMA)
    Ledger._migrate(db)
    return db


@dataclass
class Store:
    """A ledger's writer step (`commit`: one batch, one transaction) and its usage reads."""

    usage: UsageBackend
    url: str = ""
    db: sqlite3.Connection | None = None
    ledger: PgLedger | None = None

    def commit(self, gens: list[Generation]) -> bool:
        if self.db is not None:
            return Ledger._commit(self.db, gens)
        assert self.ledger is not None
        writer = pg_ledger._Writer(self.url)
        try:
            return self.ledger._store(writer, gens)
        finally:
            writer.close()


def _postgres_store(server: PostgresServer, folder: Path) -> Iterator[Store]:
    url = server.fresh_database()
    pg_schema.upgrade(url)
    pool = open_pool(url, 2)
    ledger = PgLedger(pool, url, folder)
    try:
        yield Store(PgUsage(pool), url=url, ledger=ledger)
    finally:
        ledger.close()
        pool.close()


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        db = _database(tmp_path / "s.db")
        yield Store(usage_sqlite.SqliteUsage(tmp_path / "s.db"), db=db)
        db.close()
    else:
        yield from _postgres_store(request.getfixturevalue("pg_server"), tmp_path)


def _random_generations(n: int, seed: int = 7) -> list[Generation]:
    rng = random.Random(seed)
    return [
        replace(
            GEN,
            id=f"gen-{i}",
            key_id=rng.choice(["k1", "k2", "k3"]),
            model=rng.choice(["a/x", "b/y"]),
            provider=rng.choice(["p", "q"]),
            created_at=NOW - rng.random() * 3 * 86_400,
            prompt_tokens=rng.randint(0, 500),
            completion_tokens=rng.randint(0, 500),
            cost=rng.random() / 100,
            latency_ms=rng.lognormvariate(4, 1.5),
            status="ok" if rng.random() > 0.1 else "UPSTREAM_ERROR",
        )
        for i in range(n)
    ]


Rows = dict[tuple[str, float], list[float]]


def _expected(gens: list[Generation], since: float, bucket: int, key: str | None) -> Rows:
    out: Rows = {}
    for g in gens:
        if g.created_at < since or (key is not None and g.key_id != key):
            continue
        start = float(int(g.created_at // 3600) * 3600 // bucket * bucket)
        row = out.setdefault((g.model, start), [0, 0, 0, 0, 0.0] + [0] * len(BIN_BOUNDS) + [0])
        row[0] += 1
        row[1] += g.status != "ok"
        row[2] += g.prompt_tokens
        row[3] += g.completion_tokens
        row[4] += g.cost
        if g.status == "ok":
            row[5 + latency_bin(g.latency_ms)] += 1
    return out


def _actual(usage: UsageBackend, since: float, bucket: int, key: str | None) -> Rows:
    found = usage.series(since, bucket, "model", key)
    return {
        (group, start): [
            p.requests,
            p.errors,
            p.prompt_tokens,
            p.completion_tokens,
            p.cost,
            *p.latency,
        ]
        for group, points in found.items()
        for start, p in points.items()
    }


@pytest.mark.parametrize(("bucket", "key"), [(3600, None), (6 * 3600, "k2"), (86_400, None)])
def test_series_equal_the_ledger_summed_row_by_row(
    store: Store, bucket: int, key: str | None
) -> None:
    gens = _random_generations(3_000)
    for chunk in range(0, len(gens), 500):  # as the writer commits, batch by batch
        assert store.commit(gens[chunk : chunk + 500])
    since = NOW - 2 * 86_400
    since = since // bucket * bucket  # whole buckets: the daily rollup serves daily ones
    expected = _expected(gens, since, bucket, key)
    actual = _actual(store.usage, since, bucket, key)
    assert actual.keys() == expected.keys()
    for group in expected:
        assert actual[group][:4] == expected[group][:4]
        assert actual[group][4] == pytest.approx(expected[group][4])
        assert actual[group][5:] == expected[group][5:]


def test_a_replayed_batch_is_not_counted_twice(store: Store) -> None:
    gens = _random_generations(200)
    assert store.commit(gens)
    before = _actual(store.usage, 0, 86_400, None)
    assert sum(row[0] for row in before.values()) == 200
    assert store.commit(gens[50:150])  # a journal replayed after a crash
    assert _actual(store.usage, 0, 86_400, None) == before


def test_an_older_ledger_is_rolled_up_once_on_start(tmp_path: Path) -> None:
    gens = _random_generations(1_000)
    path = tmp_path / "old.db"
    # A ledger from before the rollup: its rows, no rollup table, no status column.
    KeyStore(path).close()
    old = sqlite3.connect(path, isolation_level=None)
    added = ",\n    status TEXT NOT NULL DEFAULT 'ok',\n    attempts INTEGER NOT NULL DEFAULT 1"
    assert added in SCHEMA
    old.executescript(SCHEMA.replace(added, ""))
    columns = "id, key_id, model, provider, upstream_model, kind, created_at, prompt_tokens, "
    columns += "completion_tokens, cost, latency_ms, generation_time_ms, finish_reason, "
    columns += "streamed, cancelled"
    old.executemany(
        f"INSERT INTO generations ({columns}) VALUES ({', '.join('?' * 15)})",  # noqa: S608
        [
            (g.id, g.key_id, g.model, g.provider, g.upstream_model, g.kind, g.created_at,
             g.prompt_tokens, g.completion_tokens, g.cost, g.latency_ms, g.generation_time_ms,
             g.finish_reason, g.streamed, g.cancelled)
            for g in gens
            if g.status == "ok"
        ],
    )  # fmt: skip
    old.close()
    Ledger(path).close()
    Ledger(path).close()  # a second start adds nothing
    migrated = sqlite3.connect(path)
    assert migrated.execute("SELECT DISTINCT status, attempts FROM generations").fetchall() == [
        ("ok", 1)
    ]
    ok_only = _database(tmp_path / "ok.db")
    assert Ledger._commit(ok_only, [g for g in gens if g.status == "ok"])
    for bucket in (3600, 86_400):
        got = _actual(usage_sqlite.SqliteUsage(path), 0, bucket, None)
        want = _actual(usage_sqlite.SqliteUsage(tmp_path / "ok.db"), 0, bucket, None)
        assert got.keys() == want.keys()
        for group, row in want.items():
            assert got[group][:4] + got[group][5:] == row[:4] + row[5:]
            assert got[group][4] == pytest.approx(row[4])


def test_postgres_rollups_are_filled_from_older_rows_by_migration_2(
    pg_server: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gens = _random_generations(1_000)
    url = pg_server.fresh_database()
    # A database without migration 2 (no rollups), holding rows. Later migrations that
    # only add ledger columns are applied too, so that today's insert statement fits.
    others = tuple(m for m in pg_schema.MIGRATIONS if m[0] != 2)
    with monkeypatch.context() as before_rollups:
        before_rollups.setattr(pg_schema, "MIGRATIONS", others)
        assert pg_schema.upgrade(url) == [m[0] for m in others]
    with psycopg.connect(url) as conn, conn.cursor() as cursor:
        cursor.executemany(pg_ledger._INSERT, [_row(g) for g in gens])
    assert pg_schema.upgrade(url) == [2]
    assert pg_schema.upgrade(url) == []  # a second start adds nothing
    with ConnectionPool(url, min_size=1, max_size=1, kwargs={"autocommit": True}) as pool:
        for bucket in (3600, 6 * 3600, 86_400):
            got = _actual(PgUsage(pool), 0, bucket, None)
            want = _expected(gens, 0, bucket, None)
            assert got.keys() == want.keys()
            for group, row in want.items():
                assert got[group][:4] + got[group][5:] == row[:4] + row[5:]
                assert got[group][4] == pytest.approx(row[4])


def test_generations_are_listed_newest_first_with_filters(store: Store) -> None:
    gens = _random_generations(500)
    assert store.commit(gens)
    reader = store.usage
    failed = reader.generations(GenerationFilter(key_id="k1", status="error", limit=200))
    expected = sorted(
        (g for g in gens if g.key_id == "k1" and g.status != "ok"), key=lambda g: -g.created_at
    )
    assert failed == expected
    page = reader.generations(GenerationFilter(model="a/x", until=NOW - 86_400, limit=5))
    assert [g.id for g in page] == [
        g.id
        for g in sorted(gens, key=lambda g: -g.created_at)
        if g.model == "a/x" and g.created_at < NOW - 86_400
    ][:5]
    recent = reader.generations(GenerationFilter(provider="q", since=NOW - 3600, limit=500))
    assert {g.id for g in recent} == {
        g.id for g in gens if g.provider == "q" and g.created_at >= NOW - 3600
    }


@pytest.mark.parametrize("key", [None, "k3"])
def test_endpoints_sum_each_model_and_provider(store: Store, key: str | None) -> None:
    gens = _random_generations(1_000)
    assert store.commit(gens)
    since = (NOW - 86_400) // 3600 * 3600  # whole hours, the rollup's grain
    want: dict[tuple[str, str], list[int]] = {}
    for g in gens:
        if g.created_at >= since and (key is None or g.key_id == key):
            row = want.setdefault((g.model, g.provider), [0, 0, 0])
            row[0] += 1
            row[1] += g.status != "ok"
            row[2] += g.completion_tokens
    found = store.usage.endpoints(since, key)
    assert {
        (e.model, e.provider): [e.requests, e.errors, e.completion_tokens] for e in found
    } == want
    for e in found:
        assert e.p50_ms is not None and e.p95_ms is not None and e.p50_ms <= e.p95_ms


def test_percentiles_come_from_the_histogram_within_a_bin() -> None:
    assert latency_bin(8.0) == 0 and latency_bin(8.1) == 1 and latency_bin(16.0) == 1
    assert latency_bin(1e9) == len(BIN_BOUNDS)
    counts = [0] * (len(BIN_BOUNDS) + 1)
    counts[latency_bin(40.0)] = 100  # all in (32, 64]
    assert percentile(counts, 0.5) == pytest.approx(48.0)
    assert 32.0 < percentile(counts, 0.95) <= 64.0  # type: ignore[operator]
    counts[latency_bin(1000.0)] = 100  # half of them now in (512, 1024]
    assert percentile(counts, 0.95) == pytest.approx(512 + 512 * 0.9)
    assert percentile([0] * len(counts), 0.5) is None
