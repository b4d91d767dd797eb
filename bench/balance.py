"""Where the authoritative balance should live (issue 17): Redis or PostgreSQL, measured.

The two candidates, each doing what one request needs, a reserve then a settle, on one
hot key:

- `redis`: the gateway's RESERVE and SETTLE Lua scripts (service/store/redis_scripts.py),
  one EVALSHA each;
- `postgres`: an atomic conditional UPDATE per step (`... SET held = held + $1 WHERE
  limit - spent - held >= $1`, then `SET held = held - $1, spent = spent + $2`), each
  its own transaction (autocommit), through psycopg 3's asyncio API, on an ordinary
  (logged) table: durable as the cluster is configured (bench/shared_state.py's
  start_postgres: fsync and synchronous_commit on, as shipped).

Run sequentially (latency per reserve+settle pair) and with 64 at once on the same key
(what a burst on one key does: Redis runs scripts one after another anyway, PostgreSQL
serialises the UPDATEs on the row lock). Prints a JSON line per case.

    .venv/bin/python -m bench.balance --redis redis://127.0.0.1:6379/0 \\
        --postgres postgresql://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable

import psycopg
import redis.asyncio as redis

from service.store import redis_scripts as lua

PAIRS = 3000


async def _measure(step: Callable[[], Awaitable[None]], concurrency: int) -> dict[str, float]:
    latencies: list[float] = []
    left = PAIRS

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            began = time.perf_counter()
            await step()
            latencies.append((time.perf_counter() - began) * 1000)

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    latencies.sort()
    return {
        "pairs_per_s": len(latencies) / wall,
        "p50_ms": statistics.median(latencies),
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1],
        "client_cpu_us_per_pair": cpu / len(latencies) * 1e6,
    }


async def redis_case(url: str, concurrency: int) -> dict[str, float]:
    client = redis.Redis.from_url(url)
    reserve, settle = client.register_script(lua.RESERVE), client.register_script(lua.SETTLE)
    key_id = "bench_" + uuid.uuid4().hex[:8]
    keys = lua.credit_keys(key_id)

    async def pair() -> None:
        hold = uuid.uuid4().hex
        await reserve(keys=keys, args=[hold, "0.01", "1e12", "all", "0", 30000, "1e-12"])
        await settle(keys=keys, args=[hold, "0.01", "all"])

    try:
        return await _measure(pair, concurrency)
    finally:
        await client.delete(*keys)
        await client.aclose()


async def postgres_case(url: str, concurrency: int) -> dict[str, float]:
    setup = await psycopg.AsyncConnection.connect(url, autocommit=True)
    table = "bench_balance_" + uuid.uuid4().hex[:8]
    await setup.execute(
        f"CREATE TABLE {table} (key_id TEXT PRIMARY KEY, lim DOUBLE PRECISION, "
        "spent DOUBLE PRECISION, held DOUBLE PRECISION)"
    )
    await setup.execute(f"INSERT INTO {table} VALUES ('k', 1e12, 0, 0)")  # noqa: S608
    connections = [
        await psycopg.AsyncConnection.connect(url, autocommit=True) for _ in range(concurrency)
    ]
    free: asyncio.Queue[psycopg.AsyncConnection[tuple[object, ...]]] = asyncio.Queue()
    for conn in connections:
        free.put_nowait(conn)
    reserve = (
        f"UPDATE {table} SET held = held + %s WHERE key_id = 'k' "  # noqa: S608
        "AND lim - spent - held >= %s RETURNING lim - spent - held"
    )
    settle = f"UPDATE {table} SET held = held - %s, spent = spent + %s WHERE key_id = 'k'"  # noqa: S608

    async def pair() -> None:
        conn = await free.get()
        try:
            await conn.execute(reserve, (0.01, 0.01))
            await conn.execute(settle, (0.01, 0.01))
        finally:
            free.put_nowait(conn)

    try:
        return await _measure(pair, concurrency)
    finally:
        for conn in connections:
            await conn.close()
        await setup.execute(f"DROP TABLE {table}")
        await setup.close()


async def main(redis_url: str, postgres_url: str) -> None:
    for concurrency in (1, 64):
        for name, case in (("redis", redis_case), ("postgres", postgres_case)):
            url = redis_url if name == "redis" else postgres_url
            result = await case(url, concurrency)
            print(json.dumps({"store": name, "concurrency": concurrency, **result}), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--redis", required=True)
    parser.add_argument("--postgres", required=True)
    args = parser.parse_args()
    asyncio.run(main(args.redis, args.postgres))
