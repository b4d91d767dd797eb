"""The console's data endpoints over a ledger of 1,000,000 generations (issue 21).

`make bench-console` seeds a data directory with ROWS generations spread over the last
30 days (50 keys, 6 models on 4 providers, 3 % failures, log-normal latencies), through
the ledger's own commit path (so the usage rollup is built as the writer builds it), then
starts `switchyard serve` on it and times every page's data request over HTTP: each
request is made REPEAT times and the median and the worst are reported against the
TARGET_MS of the issue. Results go to bench/CONSOLE.md. `--rows N` seeds fewer rows.

The same is run on PostgreSQL (`storage: {database_url, redis_url}`, a scratch cluster
and redis-server as bench/shared_state.py starts them, durable commits as shipped),
seeded through the PostgreSQL writer's commit with `--pg-rows` rows (a million, as
SQLite's, by default). `--stores` picks which stores run.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import yaml

from bench.procs import ROOT, SWITCHYARD, _http_ok, free_port, start
from bench.shared_state import start_postgres, start_redis, stop_postgres
from service.accounting.ledger import SCHEMA, Generation, Ledger
from service.config import EMBEDDED_DEFAULT
from service.store.keys import KeyPolicy, KeyStore

ROWS = 1_000_000
PG_ROWS = ROWS
TARGET_MS = 300.0
REPEAT = 7
MODELS = (
    ("openai/gpt-4o", "openai"),
    ("openai/gpt-4o-mini", "openai"),
    ("anthropic/claude-sonnet", "anthropic"),
    ("google/gemini-flash", "gemini"),
    ("local/smollm2-135m-instruct", "local"),
    ("openai/gpt-4o", "azure"),
)


def _generations(ids: list[str], rows: int) -> Iterator[list[Generation]]:
    """`rows` generations over the last 30 days, in batches of 10,000."""
    rng = random.Random(21)
    now = time.time()
    batch: list[Generation] = []
    for i in range(rows):
        model, provider = rng.choice(MODELS)
        ok = rng.random() > 0.03
        latency = rng.lognormvariate(5.5, 0.8)
        batch.append(
            Generation(
                f"gen-{i:032x}", rng.choice(ids), model, provider, model, "chat",
                now - rng.random() * 30 * 86_400, rng.randint(10, 2000) if ok else 0,
                rng.randint(1, 800) if ok else 0, rng.random() / 200 if ok else 0.0,
                latency, latency * 3, "stop" if ok else "error", rng.random() < 0.5, False,
                "ok" if ok else "UPSTREAM_ERROR",
            )
        )  # fmt: skip
        if len(batch) == 10_000:  # the writer commits at most 512; bigger is faster here
            yield batch
            batch = []
    if batch:
        yield batch


def seed(data_dir: Path, rows: int) -> tuple[list[str], str]:
    """Keys and `rows` generations; the key ids, and one non-admin key's secret."""
    database = data_dir / "switchyard.db"
    keys = KeyStore(database)
    made = [keys.create(f"bench-{i}", KeyPolicy()) for i in range(50)]
    keys.close()
    db = sqlite3.connect(database, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(SCHEMA)
    Ledger._migrate(db)
    ids = [record.id for record, _ in made]
    for batch in _generations(ids, rows):
        assert Ledger._commit(db, batch)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return ids, made[0][1]


def seed_postgres(url: str, data_dir: Path, rows: int) -> tuple[list[str], str]:
    """`seed`, into PostgreSQL, through the PostgreSQL ledger writer's commit."""
    from service.store.pg_keys import PgKeyStore, open_pool
    from service.store.pg_ledger import PgLedger, _Writer

    pool = open_pool(url, 2)
    keys = PgKeyStore(pool, cache_seconds=0)  # migrates the schema
    made = [keys.create(f"bench-{i}", KeyPolicy()) for i in range(50)]
    ids = [record.id for record, _ in made]
    ledger = PgLedger(pool, url, data_dir / "seed")
    writer = _Writer(url)
    try:
        for batch in _generations(ids, rows):
            assert ledger._store(writer, batch)
    finally:
        writer.close()
        ledger.close()
        keys.close()
    # What autovacuum would soon do after a million inserts: statistics for the planner,
    # and no vacuum running through the measurements (SQLite's checkpoint, here).
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    return ids, made[0][1]


def timed(url: str, key: str) -> float:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})  # noqa: S310
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=60) as answer:  # noqa: S310 - loopback
        answer.read()
        assert answer.status == 200
    return (time.perf_counter() - started) * 1000


Result = tuple[str, float, float]  # request, median ms, worst ms


def measure(data_dir: Path, scratch: Path, config: Path | None) -> list[Result]:
    """Serve `data_dir` (and `config`'s stores) and time every page's requests."""
    key_ids = (data_dir / "bench-key-ids").read_text().split()
    user_key = (data_dir / "bench-user-key").read_text().strip()
    port = free_port()
    argv = [SWITCHYARD, "serve", "--data-dir", str(data_dir), "--http-port", str(port)]
    argv += ["--grpc-port", str(free_port())]
    if config is not None:
        argv += ["--config", str(config)]
    proc = start("console-gateway", argv, scratch, lambda: _http_ok(
        f"http://127.0.0.1:{port}/healthz"), cwd=scratch)  # fmt: skip
    try:
        admin = (data_dir / "admin-key").read_text().strip()
        base = f"http://127.0.0.1:{port}/v1"
        cases = [
            (f"{page} {rng} by {group or 'total'}", f"/usage?range={rng}&group_by={group}")
            for page, group in (("overview", ""), ("overview", "model"), ("overview", "key"))
            for rng in ("24h", "7d", "30d")
        ]
        cases += [
            ("generations, newest", "/generations"),
            ("generations, one key", f"/generations?key_id={key_ids[3]}"),
            ("generations, model + errors", "/generations?model=openai/gpt-4o&status=error"),
            ("generations, a day ago", f"/generations?until={time.time() - 86_400}"),
            ("models and providers", "/endpoints"),
        ]
        results = []
        for name, path in cases:
            samples = [timed(base + path, admin) for _ in range(REPEAT)]
            results.append((f"{name} (admin)", statistics.median(samples), max(samples)))
        for name, path in (("overview 30d by model", "/usage?range=30d&group_by=model"),
                           ("generations, newest", "/generations")):  # fmt: skip
            samples = [timed(base + path, user_key) for _ in range(REPEAT)]
            results.append((f"{name} (one key)", statistics.median(samples), max(samples)))
    finally:
        proc.stop()
    return results


def _seeded(data_dir: Path, seeding: Callable[[], tuple[list[str], str]]) -> float:
    started = time.perf_counter()
    key_ids, user_key = seeding()
    (data_dir / "bench-key-ids").write_text("\n".join(key_ids))
    (data_dir / "bench-user-key").write_text(user_key)
    return time.perf_counter() - started


def run_sqlite(scratch: Path, rows: int) -> tuple[float, list[Result]]:
    data_dir = scratch / "data"
    data_dir.mkdir(mode=0o700)
    seeded = _seeded(data_dir, lambda: seed(data_dir, rows))
    print(f"sqlite: seeded {rows:,} generations in {seeded:.0f} s", flush=True)
    return seeded, measure(data_dir, scratch, None)


def run_postgres(scratch: Path, rows: int) -> tuple[float, list[Result]]:
    redis, redis_url = start_redis(scratch)
    postgres, pg_url, pg_folder = start_postgres(scratch)
    try:
        data_dir = scratch / "data-pg"
        data_dir.mkdir(mode=0o700)
        seeded = _seeded(data_dir, lambda: seed_postgres(pg_url, data_dir, rows))
        print(f"postgres: seeded {rows:,} generations in {seeded:.0f} s", flush=True)
        config = scratch / "postgres.yaml"
        storage = {"storage": {"database_url": pg_url, "redis_url": redis_url}}
        config.write_text(yaml.safe_dump({**EMBEDDED_DEFAULT, **storage}), encoding="utf-8")
        return seeded, measure(data_dir, scratch, config)
    finally:
        redis.stop()
        stop_postgres(postgres, pg_folder)


def section(store: str, rows: int, seeded: float, results: list[Result]) -> list[str]:
    return [
        f"## {store}",
        "",
        f"{rows:,} ledger rows over 30 days, 50 keys, 6 endpoints; each request "
        f"{REPEAT} times over HTTP on loopback (target: {TARGET_MS:.0f} ms). Seeding through "
        f"the ledger writer's commit (rows and rollups) took {seeded:.0f} s.",
        "",
        "| request | median ms | worst ms | within target |",
        "|---|---:|---:|---|",
        *(
            f"| {name} | {median:.1f} | {worst:.1f} | {'yes' if worst <= TARGET_MS else 'NO'} |"
            for name, median, worst in results
        ),
        "",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=ROWS, help="SQLite's ledger rows")
    parser.add_argument("--pg-rows", type=int, default=PG_ROWS, help="PostgreSQL's ledger rows")
    parser.add_argument("--stores", default="sqlite,postgres", help="which stores to run")
    args = parser.parse_args()
    lines = ["# Console data endpoints (`make bench-console`)", ""]
    for store in args.stores.split(","):
        with tempfile.TemporaryDirectory(prefix="switchyard-console-") as tmp:
            if store == "sqlite":
                lines += section("SQLite", args.rows, *run_sqlite(Path(tmp), args.rows))
            elif store == "postgres":
                rows = args.pg_rows
                lines += section("PostgreSQL + Redis", rows, *run_postgres(Path(tmp), rows))
            else:
                parser.error(f"unknown store {store!r}: sqlite or postgres")
    report = "\n".join(lines)
    print(report)
    (ROOT / "bench" / "CONSOLE.md").write_text(report)


if __name__ == "__main__":
    main()
