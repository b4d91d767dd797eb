"""The console's data endpoints over a ledger of 1,000,000 generations (issue 21).

`make bench-console` seeds a data directory with ROWS generations spread over the last
30 days (50 keys, 6 models on 4 providers, 3 % failures, log-normal latencies), through
the ledger's own commit path (so the usage rollup is built as the writer builds it), then
starts `switchyard serve` on it and times every page's data request over HTTP: each
request is made REPEAT times and the median and the worst are reported against the
TARGET_MS of the issue. Results go to bench/CONSOLE.md. `--rows N` seeds fewer rows.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path

from bench.procs import ROOT, SWITCHYARD, _http_ok, free_port, start
from service.accounting.ledger import SCHEMA, Generation, Ledger
from service.store.keys import KeyPolicy, KeyStore

ROWS = 1_000_000
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
    rng = random.Random(21)
    now = time.time()
    ids = [record.id for record, _ in made]
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
            assert Ledger._commit(db, batch)
            batch.clear()
    if batch:
        assert Ledger._commit(db, batch)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return ids, made[0][1]


def timed(url: str, key: str) -> float:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})  # noqa: S310
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=60) as answer:  # noqa: S310 - loopback
        answer.read()
        assert answer.status == 200
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=ROWS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="switchyard-console-") as tmp:
        data_dir = Path(tmp) / "data"
        data_dir.mkdir(mode=0o700)
        started = time.perf_counter()
        key_ids, user_key = seed(data_dir, args.rows)
        seeded = time.perf_counter() - started
        print(f"seeded {args.rows:,} generations in {seeded:.0f} s", flush=True)
        port = free_port()
        argv = [SWITCHYARD, "serve", "--data-dir", str(data_dir), "--http-port", str(port)]
        argv += ["--grpc-port", str(free_port())]
        proc = start("console-gateway", argv, Path(tmp), lambda: _http_ok(
            f"http://127.0.0.1:{port}/healthz"), cwd=Path(tmp))  # fmt: skip
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
    lines = [
        "# Console data endpoints (`make bench-console`)",
        "",
        f"{args.rows:,} ledger rows over 30 days, 50 keys, 6 endpoints; each request "
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
    report = "\n".join(lines)
    print(report)
    (ROOT / "bench" / "CONSOLE.md").write_text(report)


if __name__ == "__main__":
    main()
