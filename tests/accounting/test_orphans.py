"""Journals left by dead processes are replayed, whatever their pid says (issue 16, item 8).

A journal's owner is whoever holds its lock. The file names a pid, and a pid lies: a
process killed with SIGKILL is a zombie (and `kill(pid, 0)` succeeds) until its parent
reaps it, and a pid is reused. These tests plant a journal named after such a pid, as a
killed gateway leaves it, and check that its rows are committed and billed.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from service.accounting.ledger import Generation
from tests.fixtures.gateway import Gateway, start_gateway
from tests.fixtures.http import request

CONFIG = """
providers:
  a: {kind: openai, base_url: "http://127.0.0.1:9/v1", api_key: x}
models:
  - {id: any/chat, endpoints: [{provider: a, model: echo}]}
"""


@pytest.fixture
def zombie_pid() -> Iterator[int]:
    """The pid of a process that was killed and not reaped: it still 'exists'."""
    child = subprocess.Popen(["sleep", "60"])
    child.send_signal(signal.SIGKILL)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{child.pid}/stat").read_text().split()[2] != "Z":
        assert time.monotonic() < deadline, "the child never became a zombie"
        time.sleep(0.01)
    os.kill(child.pid, 0)  # what the old liveness check asked: it succeeds
    yield child.pid
    child.wait()


def plant(data: Path, pid: int, key_id: str, cost: float) -> str:
    """A journal with one generation, as a process `pid` killed mid-flight leaves it."""
    generation = Generation(
        id="gen-" + uuid.uuid4().hex,
        key_id=key_id,
        model="any/chat",
        provider="a",
        upstream_model="echo",
        kind="chat",
        created_at=time.time(),
        prompt_tokens=3,
        completion_tokens=5,
        cost=cost,
        latency_ms=1.0,
        generation_time_ms=2.0,
        finish_reason="stop",
        streamed=False,
        cancelled=False,
    )
    folder = data / "ledger-journal"
    folder.mkdir(parents=True, exist_ok=True)
    line = orjson.dumps(dataclasses.astuple(generation)) + b"\n"
    (folder / f"{pid}-{uuid.uuid4().hex[:8]}.jsonl").write_bytes(line + b"\0" * 64)
    return generation.id


def own_key(gateway: Gateway) -> tuple[str, float]:
    raw = request(
        "GET", gateway.base_url + "/key", headers={"Authorization": f"Bearer {gateway.key}"}
    )
    data = raw.json()["data"]
    return str(data["id"]), float(data["usage"])


def committed(data: Path, generation_id: str) -> bool:
    db = sqlite3.connect(data / "switchyard.db")
    try:
        row = db.execute("SELECT 1 FROM generations WHERE id = ?", (generation_id,)).fetchone()
    finally:
        db.close()
    return row is not None


@pytest.mark.parametrize("owner", ["zombie", "reused"])
def test_a_journal_whose_pid_lies_is_replayed_at_start(
    tmp_path: Path, zombie_pid: int, owner: str
) -> None:
    config = tmp_path / "switchyard.yaml"
    config.write_text(CONFIG)
    data = tmp_path / "data"
    first = start_gateway(config, data)
    key_id, _ = own_key(first)
    first.stop()
    # "reused": the pid now belongs to a live process (this test's own).
    pid = zombie_pid if owner == "zombie" else os.getpid()
    planted = plant(data, pid, key_id, 0.25)
    again = start_gateway(config, data, fresh=False)
    try:
        assert committed(data, planted), "the dead process's generation was skipped"
        assert own_key(again)[1] == pytest.approx(0.25)
        assert not list((data / "ledger-journal").glob(f"{pid}-*.jsonl"))
    finally:
        again.stop()


def test_an_orphan_is_adopted_while_running(tmp_path: Path, zombie_pid: int) -> None:
    """A worker killed beside a running one: its journal is replayed without a restart."""
    config = tmp_path / "switchyard.yaml"
    config.write_text(CONFIG)
    data = tmp_path / "data"
    gateway = start_gateway(config, data)
    try:
        key_id, _ = own_key(gateway)
        planted = plant(data, zombie_pid, key_id, 0.5)
        deadline = time.monotonic() + 30
        while not committed(data, planted):
            assert time.monotonic() < deadline, "the orphaned journal was never replayed"
            time.sleep(0.1)
        admin = {"Authorization": f"Bearer {(data / 'admin-key').read_text().strip()}"}
        found = request("GET", gateway.base_url + f"/generation?id={planted}", headers=admin)
        assert found.status == 200, found.body
        # The running process's own journal is never taken for an orphan.
        own = list((data / "ledger-journal").glob(f"{gateway.process.pid}-*.jsonl"))
        assert len(own) == 1
    finally:
        gateway.stop()
