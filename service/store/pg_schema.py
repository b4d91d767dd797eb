"""PostgreSQL's schema, as numbered migrations applied once each, in order.

Applied at every start (before the gateway serves) and by `switchyard db upgrade`; the
versions applied are kept in `schema_migrations`. Replicas starting together take a
transaction-scoped advisory lock first, so one of them applies a migration and the
others find it done. A migration is never edited once released: a change is a new one.
"""

from __future__ import annotations

import psycopg

from service.store import pg_usage

# pg_advisory_xact_lock's key for migrations: any constant, the same in every replica.
_LOCK = 0x5357_4954_4348  # "SWITCH"

MIGRATIONS: tuple[tuple[int, str, str], ...] = (
    (
        1,
        "keys, spending per period, the ledger",
        """
        CREATE TABLE api_keys (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            key_hash TEXT NOT NULL UNIQUE,
            display TEXT NOT NULL,
            created_at DOUBLE PRECISION NOT NULL,
            revoked_at DOUBLE PRECISION,
            is_admin INTEGER NOT NULL DEFAULT 0,
            credit_limit DOUBLE PRECISION,
            usage DOUBLE PRECISION NOT NULL DEFAULT 0,
            rpm INTEGER,
            tpm INTEGER,
            max_concurrent INTEGER,
            allowed_models TEXT,
            expires_at DOUBLE PRECISION,
            disabled INTEGER NOT NULL DEFAULT 0,
            limit_reset TEXT
        );
        CREATE TABLE key_usage (
            key_id TEXT NOT NULL,
            period TEXT NOT NULL,
            usage DOUBLE PRECISION NOT NULL DEFAULT 0,
            PRIMARY KEY (key_id, period)
        );
        CREATE TABLE generations (
            id TEXT PRIMARY KEY,
            key_id TEXT NOT NULL,
            model TEXT NOT NULL,
            provider TEXT NOT NULL,
            upstream_model TEXT NOT NULL,
            kind TEXT NOT NULL,
            created_at DOUBLE PRECISION NOT NULL,
            prompt_tokens INTEGER NOT NULL,
            completion_tokens INTEGER NOT NULL,
            cost DOUBLE PRECISION NOT NULL,
            latency_ms DOUBLE PRECISION NOT NULL,
            generation_time_ms DOUBLE PRECISION NOT NULL,
            finish_reason TEXT NOT NULL,
            streamed BOOLEAN NOT NULL,
            cancelled BOOLEAN NOT NULL,
            status TEXT NOT NULL DEFAULT 'ok',
            attempts INTEGER NOT NULL DEFAULT 1,
            cached_tokens INTEGER NOT NULL DEFAULT 0,
            cache_write_tokens INTEGER NOT NULL DEFAULT 0,
            billed_at DOUBLE PRECISION NOT NULL DEFAULT 0
        );
        CREATE INDEX generations_key ON generations (key_id, created_at);
        """,
    ),
    # The console's rollups (issue 21), filled from the generations already stored.
    (2, "usage rollups, the ledger's read indexes", pg_usage.SCHEMA),
    (
        3,
        "the ledger records response-cache hits",
        """
        ALTER TABLE generations ADD COLUMN cache TEXT NOT NULL DEFAULT '';
        """,
    ),
)


def upgrade(url: str, *, connect_timeout: float = 10.0) -> list[int]:
    """Apply the migrations `url`'s database lacks; the versions applied now."""
    with psycopg.connect(url, connect_timeout=int(max(1, connect_timeout))) as conn:
        return upgrade_on(conn)


def upgrade_on(conn: psycopg.Connection[tuple[object, ...]]) -> list[int]:
    applied: list[int] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
            "description TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        for version, description, sql in MIGRATIONS:
            if version in done:
                continue
            conn.execute(sql.encode())  # several statements, no parameters
            conn.execute(
                "INSERT INTO schema_migrations (version, description) VALUES (%s, %s)",
                (version, description),
            )
            applied.append(version)
    return applied
