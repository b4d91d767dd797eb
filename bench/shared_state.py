"""Shared state (issue 17): the gateway on the embedded default against the gateway with
its limits, holds and key invalidation in Redis, with the same limited key.

A third gateway keeps its keys and ledger in PostgreSQL (durable commits) beside the
Redis limits: a deployment of replicas as shipped.

Every request of a limited key runs the limit and credit checks, so every gateway gets
a key with a credit limit, rpm, tpm and a concurrency cap too large to bind: the
embedded one counts them in process, the Redis ones run one admission script (admit and
reserve, one round trip) and queue the finish and settle scripts for their writer. The
gateway is on CPU 0 as in every other step; redis-server and PostgreSQL are pinned with
the clients to CPU 1, so their CPU is not charged to the gateway (a deployment pays it
on the Redis and PostgreSQL hosts), and the report takes RPS per core from the
gateway's own CPU seconds.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import urllib.request
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from bench import scenarios
from bench.procs import CLIENT_CPU, Gateway, Proc, _port_open, free_port, pinned, start
from bench.scenarios import Settings, Target

JSON = dict[str, Any]
REDIS_SERVER = "/usr/bin/redis-server"
PG_BIN = Path("/usr/lib/postgresql/15/bin")
# Large enough never to bind during a run; present, so that every check runs.
POLICY = {"limit": 1e9, "rpm": 10**9, "tpm": 2 * 10**9, "max_concurrent": 10**6}


def start_redis(scratch: Path) -> tuple[Proc, str]:
    port = free_port()
    argv = [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    argv += ["--appendonly", "no", "--dir", str(scratch)]
    proc = start("redis", pinned(CLIENT_CPU, argv), scratch, lambda: _port_open(port))
    return proc, f"redis://127.0.0.1:{port}/0"


def start_postgres(scratch: Path) -> tuple[Proc, str, Path]:
    """A scratch PostgreSQL 15 cluster (initdb as `postgres`, which it must run as), pinned
    with the clients to CPU 1; durable commits as shipped (fsync and synchronous_commit
    on), unlike the tests' throwaway cluster."""
    folder = Path(tempfile.mkdtemp(prefix="switchyard-bench-pg-"))
    shutil.chown(folder, "postgres", "postgres")
    as_postgres = ["/usr/sbin/runuser", "-u", "postgres", "--"]
    subprocess.run(  # noqa: S603 - fixed argv
        [*as_postgres, str(PG_BIN / "initdb"), "-D", str(folder / "data"), "--auth=trust"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    port = free_port()
    argv = [*as_postgres, str(PG_BIN / "postgres"), "-D", str(folder / "data")]
    argv += ["-p", str(port), "-k", str(folder), "-c", "listen_addresses=127.0.0.1"]
    proc = start("postgres", pinned(CLIENT_CPU, argv), scratch, lambda: _port_open(port))
    return proc, f"postgresql://postgres@127.0.0.1:{port}/postgres", folder


def stop_postgres(postgres: Proc, folder: Path) -> None:
    """Stop a cluster `start_postgres` started and remove its folder."""
    # pg_ctl stops the postmaster (runuser, its parent, passes no signal on).
    subprocess.run(  # noqa: S603 - fixed argv
        ["/usr/sbin/runuser", "-u", "postgres", "--", str(PG_BIN / "pg_ctl"), "-D",
         str(folder / "data"), "stop", "-m", "fast"],
        check=False, capture_output=True, timeout=60,
    )  # fmt: skip
    postgres.stop()
    shutil.rmtree(folder, ignore_errors=True)


def limited_key(gateway: Gateway, data_dir: Path) -> str:
    """A key with every limit set (made through the admin API); its secret."""
    admin = (data_dir / "admin-key").read_text().strip()
    body = json.dumps({"name": "bench-limited", **POLICY}).encode()
    ask = urllib.request.Request(  # noqa: S310 - loopback URL built here
        gateway.url + "/v1/keys",
        data=body,
        headers={"Authorization": f"Bearer {admin}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(ask, timeout=10) as answer:  # noqa: S310
        return str(json.loads(answer.read())["key"])


def suite(
    start_gateway: Callable[[str, Path], tuple[Gateway, Path] | None],
    base_config: str,
    settings: Settings,
    scratch: Path,
    guard: Callable[[str, Callable[[], JSON]], JSON | None],
    release: Callable[[Proc], None],
) -> JSON:
    """Saturation (wrk) and latency at the fixed rate, in turns, embedded vs Redis."""
    redis, url = start_redis(scratch)
    postgres, pg_url, pg_folder = start_postgres(scratch)
    out: JSON = {}
    targets: list[Target] = []
    gateways: list[Gateway] = []
    try:
        for label, storage in (
            ("embedded", ""),
            ("redis", f"storage: {{redis_url: '{url}'}}\n"),
            ("postgres+redis", f"storage: {{redis_url: '{url}', database_url: '{pg_url}'}}\n"),
        ):
            config = scratch / f"shared-{label}.yaml"
            config.write_text(storage + base_config, encoding="utf-8")
            started = start_gateway(f"gateway-shared-{label}", config)
            if started is None:
                continue
            gateway, data_dir = started
            gateways.append(gateway)
            target = Target(
                f"shared-{label}",
                gateway.url,
                limited_key(gateway, data_dir),
                "bench/chat",
                "bench/many",
                gateway.proc.pid,
            )
            targets.append(target)
            result = guard(
                target.label + "/wrk", partial(scenarios.wrk_suite, target, settings, scratch)
            )
            out[label] = {"wrk": result}
        rates = guard(
            "shared/rate (in turns)",
            partial(scenarios.interleaved, scenarios.latency_at_rate, targets, settings),
        )
        for target in targets:
            out[target.label.removeprefix("shared-")]["rate"] = (rates or {}).get(target.label)
    finally:
        for gateway in gateways:
            release(gateway.proc)
        redis.stop()
        stop_postgres(postgres, pg_folder)
    return out
