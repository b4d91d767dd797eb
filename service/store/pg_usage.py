"""Usage aggregates over the ledger, in PostgreSQL: the console's reads for a fleet.

The same rollups as SQLite's (service/accounting/usage_sqlite.py, which says why there
are three grains): `usage_hourly`, `usage_6h` and `usage_daily`, one row per period, key,
model, provider and kind, with the latency histogram of usage.py in LATENCY_BINS
columns. The ledger's writer (pg_ledger.py) keeps them up to date in the transaction
that inserts the generations, by one `INSERT ... SELECT ... GROUP BY` per table over the
rows that transaction actually inserted (a replayed journal inserts nothing, so adds
nothing). PostgreSQL sums the batch, not Python; the reads are the same sums over
whole periods, so both stores answer alike.

Replicas' writers upsert the same rollup rows concurrently: each statement takes its
rows in the primary key's order, and every transaction touches the tables in the same
order, so two writers wait for each other rather than deadlock.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from service.accounting.usage import (
    BIN_BOUNDS,
    GROUPS,
    LATENCY_BINS,
    EndpointUsage,
    GenerationFilter,
    Point,
    percentile,
)

if TYPE_CHECKING:
    from psycopg_pool import ConnectionPool

    from service.accounting.ledger import Generation

_BIN_COLUMNS = tuple(f"lat{i}" for i in range(LATENCY_BINS))
_GROUP = "period, key_id, model, provider, kind"
_COLUMNS = (
    f"{_GROUP}, requests, errors, prompt_tokens, completion_tokens, cost, generation_ms, "
    + ", ".join(_BIN_COLUMNS)
)
# Rollup tables by grain (seconds), in the order every writer upserts them.
GRAINS = {"usage_hourly": 3_600, "usage_6h": 21_600, "usage_daily": 86_400}


def _table(name: str) -> str:
    # The primary key leads with the period: a chart's range is one index range scan,
    # narrowed to a key by the filter (a range holds a few thousand rows at most).
    return f"""
        CREATE TABLE {name} (
            period BIGINT NOT NULL,
            key_id TEXT NOT NULL,
            model TEXT NOT NULL,
            provider TEXT NOT NULL,
            kind TEXT NOT NULL,
            requests BIGINT NOT NULL,
            errors BIGINT NOT NULL,
            prompt_tokens BIGINT NOT NULL,
            completion_tokens BIGINT NOT NULL,
            cost DOUBLE PRECISION NOT NULL,
            generation_ms DOUBLE PRECISION NOT NULL,
            {", ".join(f"{c} BIGINT NOT NULL DEFAULT 0" for c in _BIN_COLUMNS)},
            PRIMARY KEY (period, key_id, model, provider, kind)
        );
        """


def _bin_sql(i: int) -> str:
    """Counts the successful rows whose latency falls in bin i (as usage.latency_bin)."""
    low = "" if i == 0 else f" AND latency_ms > {BIN_BOUNDS[i - 1]}"
    high = "" if i == LATENCY_BINS - 1 else f" AND latency_ms <= {BIN_BOUNDS[i]}"
    return f"COUNT(*) FILTER (WHERE status = 'ok'{low}{high})"


def _summed(table: str, grain: int, where: str) -> str:
    """INSERT the generations that match `where`, summed by period and group."""
    return (
        f"INSERT INTO {table} ({_COLUMNS}) "  # noqa: S608 - fixed names
        f"SELECT (floor(created_at / {grain}) * {grain})::bigint, key_id, model, provider, "
        "kind, COUNT(*), COUNT(*) FILTER (WHERE status <> 'ok'), SUM(prompt_tokens), "
        "SUM(completion_tokens), SUM(cost), SUM(generation_time_ms), "
        f"{', '.join(_bin_sql(i) for i in range(LATENCY_BINS))} "
        f"FROM generations {where} GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5"
    )


def _upsert(table: str, grain: int) -> str:
    added = ("requests", "errors", "prompt_tokens", "completion_tokens", "cost", "generation_ms")
    return (
        _summed(table, grain, "WHERE id = ANY(%s)")
        + f" ON CONFLICT ({_GROUP}) DO UPDATE SET "
        + ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in (*added, *_BIN_COLUMNS))
    )


# Migration 2 (pg_schema.py): the rollups, filled once from the rows already there, and
# the indexes the generations list reads by (migration 1 made the one on key and time).
SCHEMA = (
    "".join(_table(name) for name in GRAINS)
    + "".join(f"{_summed(table, grain, '')};\n" for table, grain in GRAINS.items())
    + """
        CREATE INDEX generations_time ON generations (created_at);
        CREATE INDEX generations_model ON generations (model, created_at);
        """
)
_UPSERTS = tuple(_upsert(table, grain) for table, grain in GRAINS.items())


def roll_up(cursor: Any, inserted: list[str]) -> None:
    """Add the generations with these ids (just inserted, in the cursor's transaction)."""
    if inserted:
        for upsert in _UPSERTS:
            cursor.execute(upsert, (inserted,))


def _grain(since: float, bucket_seconds: int) -> tuple[str, int]:
    """The coarsest rollup whose periods tile these buckets."""
    for table, grain in sorted(GRAINS.items(), key=lambda kv: -kv[1]):
        if bucket_seconds % grain == 0 and since % grain == 0:
            return table, grain
    return "usage_hourly", 3_600


_SUMS = ", ".join(f"SUM({c})" for c in _BIN_COLUMNS)


class PgUsage:
    """The usage reads, on the shared pool's connections (calls run in worker threads)."""

    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool

    def _rows(self, sql: str, args: list[object]) -> list[tuple[Any, ...]]:
        with self._pool.connection() as conn:
            return conn.execute(sql.encode(), args).fetchall()

    def series(
        self, since: float, bucket_seconds: int, group_by: str = "", key_id: str | None = None
    ) -> dict[str, dict[float, Point]]:
        """Per group value, per bucket start: the sums of the rollup from `since` on."""
        column = "''::text" if group_by == "" else GROUPS[group_by]
        table, grain = _grain(since, bucket_seconds)
        args: list[object] = [bucket_seconds, bucket_seconds, int(since // grain) * grain]
        if key_id is not None:
            args.append(key_id)
        sql = (
            f"SELECT {column}, (period / %s::bigint) * %s::bigint, SUM(requests), "  # noqa: S608
            f"SUM(errors), SUM(prompt_tokens), SUM(completion_tokens), SUM(cost), {_SUMS} "
            f"FROM {table} WHERE period >= %s{' AND key_id = %s' if key_id is not None else ''} "
            "GROUP BY 1, 2"
        )
        out: dict[str, dict[float, Point]] = {}
        for row in self._rows(sql, args):
            group, start = str(row[0]), float(row[1])
            out.setdefault(group, {})[start] = Point(
                start, int(row[2]), int(row[3]), int(row[4]), int(row[5]), float(row[6]),
                [int(n) for n in row[7:]],
            )  # fmt: skip
        return out

    def endpoints(self, since: float, key_id: str | None = None) -> list[EndpointUsage]:
        """Per model and provider since `since`: volume, errors and latency."""
        args: list[object] = [int(since // 3600) * 3600]
        if key_id is not None:
            args.append(key_id)
        sql = (
            "SELECT model, provider, SUM(requests), SUM(errors), SUM(completion_tokens), "  # noqa: S608
            f"SUM(generation_ms), {_SUMS} FROM usage_hourly WHERE period >= %s"
            f"{' AND key_id = %s' if key_id is not None else ''} GROUP BY model, provider"
        )
        found = []
        for row in self._rows(sql, args):
            bins = [int(n) for n in row[6:]]
            found.append(
                EndpointUsage(
                    str(row[0]), str(row[1]), int(row[2]), int(row[3]), int(row[4]),
                    float(row[5]), percentile(bins, 0.5), percentile(bins, 0.95),
                )
            )  # fmt: skip
        return found

    def generations(self, f: GenerationFilter) -> list[Generation]:
        """The newest generations that match, newest first."""
        from service.accounting.ledger import COLUMNS, from_row

        where, args = f.where("%s")
        sql = (
            f"SELECT {COLUMNS} FROM generations {where} "  # noqa: S608 - fixed names
            "ORDER BY created_at DESC LIMIT %s"
        )
        return [from_row(tuple(r)) for r in self._rows(sql, [*args, f.limit])]
