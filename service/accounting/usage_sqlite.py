"""Usage aggregates over the ledger, in SQLite: the console's charts and lists.

Summing a million ledger rows takes SQLite about half a second to a second on this
machine, so the charts do not read `generations`: they read rollups, one row per
period (an hour in `usage_hourly`, six in `usage_6h`, a day in `usage_daily`), key,
model, provider and kind, which the ledger's writer keeps up to date in the same
transaction that inserts the generations (only a row actually inserted counts, so a
replayed journal adds nothing twice). A 30-day chart then sums a few thousand rows.

Each rollup row keeps its latency histogram (usage.py) in LATENCY_BINS columns, which
the database sums per bucket like any other count. The ledger of
a generation (its list and its details) is read from `generations` itself, by indexes
on time, key and model.

PostgreSQL's sibling (service/store/pg_usage.py) keeps the same tables and answers the
same reads; its writer sums a batch in SQL from the rows it inserted.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING

from service.accounting.usage import (
    BIN_BOUNDS,
    LATENCY_BINS,
    EndpointUsage,
    GenerationFilter,
    Point,
    latency_bin,
    percentile,
)

if TYPE_CHECKING:
    from service.accounting.ledger import Generation

_BIN_COLUMNS = tuple(f"lat{i}" for i in range(LATENCY_BINS))
_GROUP_COLUMNS = {"": "''", "model": "model", "provider": "provider", "key": "key_id"}

# Rollup tables by grain (seconds). A chart reads the coarsest one its buckets allow: a
# 30-day chart of a busy gateway sums 30 daily rows per key and model, not 720 hourly;
# a 7-day one 28 six-hourly rows. Keeping three costs the writer nothing measurable
# (a batch is summed in Python first: one upsert per group and table).
GRAINS = {"usage_hourly": 3_600, "usage_6h": 21_600, "usage_daily": 86_400}


def _table(name: str) -> str:
    # WITHOUT ROWID: rows are stored in key order, so a time range is read in one sweep.
    # No index on key_id: one key's range is read the same way (a range holds a few
    # thousand rows at most, thanks to the grains), and with such an index SQLite chose
    # it to group by key, reading every row of every period (about 200 ms at 1M rows).
    return f"""
CREATE TABLE IF NOT EXISTS {name} (
    period INTEGER NOT NULL,
    key_id TEXT NOT NULL,
    model TEXT NOT NULL,
    provider TEXT NOT NULL,
    kind TEXT NOT NULL,
    requests INTEGER NOT NULL,
    errors INTEGER NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cost REAL NOT NULL,
    generation_ms REAL NOT NULL,
    {", ".join(f"{c} INTEGER NOT NULL DEFAULT 0" for c in _BIN_COLUMNS)},
    PRIMARY KEY (period, key_id, model, provider, kind)
) WITHOUT ROWID;
"""


SCHEMA = (
    "".join(_table(name) for name in GRAINS)
    + """
CREATE INDEX IF NOT EXISTS generations_time ON generations (created_at);
CREATE INDEX IF NOT EXISTS generations_model ON generations (model, created_at);
"""
)
_COLUMNS = (
    "period, key_id, model, provider, kind, requests, errors, prompt_tokens, "
    f"completion_tokens, cost, generation_ms, {', '.join(_BIN_COLUMNS)}"
)


def _upsert(table: str) -> str:
    return (
        f"INSERT INTO {table} ({_COLUMNS}) "  # noqa: S608 - fixed names
        f"VALUES ({', '.join('?' for _ in range(11 + LATENCY_BINS))}) "
        "ON CONFLICT (period, key_id, model, provider, kind) DO UPDATE SET "
        "requests = requests + excluded.requests, errors = errors + excluded.errors, "
        "prompt_tokens = prompt_tokens + excluded.prompt_tokens, "
        "completion_tokens = completion_tokens + excluded.completion_tokens, "
        "cost = cost + excluded.cost, generation_ms = generation_ms + excluded.generation_ms, "
        + ", ".join(f"{c} = {c} + excluded.{c}" for c in _BIN_COLUMNS)
    )


_UPSERTS = {table: _upsert(table) for table in GRAINS}


def _bin_sql(i: int) -> str:
    """SQL that is 1 when a successful row's latency falls in bin i (as `latency_bin`)."""
    low = "" if i == 0 else f" AND latency_ms > {BIN_BOUNDS[i - 1]}"
    high = "" if i == LATENCY_BINS - 1 else f" AND latency_ms <= {BIN_BOUNDS[i]}"
    return f"SUM(CASE WHEN status = 'ok'{low}{high} THEN 1 ELSE 0 END)"


def migrate(db: sqlite3.Connection) -> None:
    """Create the rollups (and the ledger's read indexes); fill a new one once, in SQL,
    from the ledger's rows. Runs in the ledger's set-up transaction (so that two workers
    starting together fill it once), before its writer starts."""
    existing = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    for statement in SCHEMA.split(";"):
        if statement.strip():
            db.execute(statement)
    for table, grain in GRAINS.items():
        if table in existing:
            continue
        db.execute(
            f"INSERT INTO {table} ({_COLUMNS}) "  # noqa: S608 - fixed names
            f"SELECT CAST(created_at / {grain} AS INTEGER) * {grain} AS p, key_id, model, "
            "provider, kind, COUNT(*), SUM(status <> 'ok'), SUM(prompt_tokens), "
            "SUM(completion_tokens), SUM(cost), SUM(generation_time_ms), "
            f"{', '.join(_bin_sql(i) for i in range(LATENCY_BINS))} "
            "FROM generations GROUP BY p, key_id, model, provider, kind"
        )


_Group = tuple[int, str, str, str, str]  # period, key, model, provider, kind


def roll_up(db: sqlite3.Connection, generations: Iterable[Generation]) -> None:
    """Add generations (just inserted, inside the caller's transaction) to the rollups.

    A batch is summed here first, once, by hour: one upsert per period, key, model and
    provider and table, not one per generation; the coarser grains fold the hourly sums.
    """
    hourly: dict[_Group, list[float]] = {}
    for g in generations:
        group = (int(g.created_at // 3600) * 3600, g.key_id, g.model, g.provider, g.kind)
        row = hourly.get(group)
        if row is None:
            row = hourly[group] = [0.0] * (6 + LATENCY_BINS)
        row[0] += 1
        row[1] += g.status != "ok"
        row[2] += g.prompt_tokens
        row[3] += g.completion_tokens
        row[4] += g.cost
        row[5] += g.generation_time_ms
        if g.status == "ok":  # a failure's latency is not a model's latency
            row[6 + latency_bin(g.latency_ms)] += 1
    for table, grain in GRAINS.items():
        sums = hourly
        if grain != 3600:
            sums = {}
            for (hour, key_id, model, provider, kind), values in hourly.items():
                folded = (hour // grain * grain, key_id, model, provider, kind)
                total = sums.get(folded)
                if total is None:
                    sums[folded] = list(values)
                else:
                    for i, v in enumerate(values):
                        total[i] += v
        db.executemany(
            _UPSERTS[table],
            [
                (*group, *(int(v) for v in r[:4]), r[4], r[5], *(int(v) for v in r[6:]))
                for group, r in sums.items()
            ],
        )


def _grain(since: float, bucket_seconds: int) -> tuple[str, int]:
    """The coarsest rollup whose periods tile these buckets."""
    for table, grain in sorted(GRAINS.items(), key=lambda kv: -kv[1]):
        if bucket_seconds % grain == 0 and since % grain == 0:
            return table, grain
    return "usage_hourly", 3_600


def series(
    db: sqlite3.Connection,
    since: float,
    bucket_seconds: int,
    group_by: str = "",
    key_id: str | None = None,
) -> dict[str, dict[float, Point]]:
    """Per group value, per bucket start: the sums of the rollup from `since` on."""
    column = _GROUP_COLUMNS[group_by]
    table, grain = _grain(since, bucket_seconds)
    where = "period >= ?" + (" AND key_id = ?" if key_id is not None else "")
    args: list[object] = [int(since // grain) * grain]
    if key_id is not None:
        args.append(key_id)
    sql = (
        f"SELECT {column} AS g, (period / ?) * ? AS b, SUM(requests), SUM(errors), "  # noqa: S608
        f"SUM(prompt_tokens), SUM(completion_tokens), SUM(cost), "
        f"{', '.join(f'SUM({c})' for c in _BIN_COLUMNS)} "
        f"FROM {table} WHERE {where} GROUP BY g, b"
    )
    out: dict[str, dict[float, Point]] = {}
    for row in db.execute(sql, [bucket_seconds, bucket_seconds, *args]):
        group, start = str(row[0]), float(row[1])
        out.setdefault(group, {})[start] = Point(
            start, int(row[2]), int(row[3]), int(row[4]), int(row[5]), float(row[6]),
            [int(n) for n in row[7:]],
        )  # fmt: skip
    return out


def endpoints(
    db: sqlite3.Connection, since: float, key_id: str | None = None
) -> list[EndpointUsage]:
    """Per model and provider since `since`: volume, errors and latency."""
    sql = (
        "SELECT model, provider, SUM(requests), SUM(errors), SUM(completion_tokens), "  # noqa: S608
        f"SUM(generation_ms), {', '.join(f'SUM({c})' for c in _BIN_COLUMNS)} "
        f"FROM usage_hourly WHERE period >= ?{' AND key_id = ?' if key_id is not None else ''} "
        "GROUP BY model, provider"
    )
    args: list[object] = [int(since // 3600) * 3600]
    if key_id is not None:
        args.append(key_id)
    found = []
    for row in db.execute(sql, args):
        bins = [int(n) for n in row[6:]]
        found.append(
            EndpointUsage(
                str(row[0]), str(row[1]), int(row[2]), int(row[3]), int(row[4]), float(row[5]),
                percentile(bins, 0.5), percentile(bins, 0.95),
            )
        )  # fmt: skip
    return found


def generations(
    db: sqlite3.Connection, f: GenerationFilter, columns: str
) -> list[tuple[object, ...]]:
    """The newest generations that match, newest first."""
    where, args = f.where("?")
    sql = (
        f"SELECT {columns} FROM generations {where} "  # noqa: S608 - fixed names
        "ORDER BY created_at DESC LIMIT ?"
    )
    return db.execute(sql, [*args, f.limit]).fetchall()


class SqliteUsage:
    """The usage reads, on their own read-only connection per call (calls run in worker
    threads, and a SQLite connection is cheap to open next to the query it serves)."""

    def __init__(self, path: Path) -> None:
        self._uri = f"file:{path}?mode=ro"

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self._uri, uri=True)
        db.execute("PRAGMA busy_timeout=5000")
        return db

    def series(
        self, since: float, bucket_seconds: int, group_by: str = "", key_id: str | None = None
    ) -> dict[str, dict[float, Point]]:
        with closing(self._connect()) as db:
            return series(db, since, bucket_seconds, group_by, key_id)

    def endpoints(self, since: float, key_id: str | None = None) -> list[EndpointUsage]:
        with closing(self._connect()) as db:
            return endpoints(db, since, key_id)

    def generations(self, f: GenerationFilter) -> list[Generation]:
        from service.accounting.ledger import COLUMNS, from_row

        with closing(self._connect()) as db:
            return [from_row(r) for r in generations(db, f, COLUMNS)]
