"""A process killed with SIGKILL: its reservations lapse, its finished generations stay."""

from __future__ import annotations

import contextlib
import signal
import sqlite3
import time
from pathlib import Path

import grpc
import pytest
from switchyard.v1 import chat_pb2, chat_pb2_grpc

from tests.fixtures.gateway import start_gateway
from tests.fixtures.http import open_stream, request
from tests.fixtures.mock_openai import MockOpenAI

CONFIG = """
routing: {{retries: 0}}
providers:
  a: {{kind: openai, base_url: "{url}", api_key: upstream-secret}}
models:
  - id: paid/chat
    endpoints: [{{provider: a, model: echo, pricing: {{request: 0.1}}}}]
  - id: paid/slow
    endpoints: [{{provider: a, model: slow, pricing: {{request: 0.5}}}}]
  - id: paid/slow-tokens
    endpoints: [{{provider: a, model: slow, pricing: {{completion: 0.001}}}}]
"""


def test_sigkill_keeps_the_ledger_and_drops_reservations(tmp_path: Path) -> None:
    mock = MockOpenAI().start()
    config = tmp_path / "switchyard.yaml"
    config.write_text(CONFIG.format(url=mock.base_url))
    data = tmp_path / "data"
    gateway = start_gateway(config, data)
    try:
        admin = {"Authorization": f"Bearer {(data / 'admin-key').read_text().strip()}"}
        created = request("POST", gateway.base_url + "/keys", {"name": "k", "limit": 1.0}, admin)
        secret = created.json()["key"]
        auth = {"Authorization": f"Bearer {secret}"}
        ids = []
        for _ in range(3):  # 0.30 spent
            raw = request(
                "POST",
                gateway.base_url + "/chat/completions",
                {"model": "paid/chat", "messages": [{"role": "user", "content": "x"}]},
                auth,
            )
            assert raw.status == 200
            ids.append(raw.headers["x-generation-id"])
        # A stream in flight holds 0.5 of the remaining 0.7 ...
        conn, response = open_stream(
            gateway.base_url + "/chat/completions",
            {"model": "paid/slow", "stream": True, "messages": [{"role": "user", "content": "x"}]},
            auth,
        )
        assert response.status == 200
        remaining = request("GET", gateway.base_url + "/key", headers=auth).json()["data"]
        assert remaining["usage"] < 0.31
        # ... so a second one cannot be afforded while it runs.
        refused = request(
            "POST",
            gateway.base_url + "/chat/completions",
            {"model": "paid/slow", "messages": [{"role": "user", "content": "x"}]},
            auth,
        )
        assert refused.status == 402
        gateway.process.send_signal(signal.SIGKILL)
        gateway.process.wait(timeout=10)
        conn.close()
    finally:
        gateway.stop()

    again = start_gateway(config, data, fresh=False)  # replays what the killed one journaled
    try:
        db = sqlite3.connect(data / "switchyard.db")
        rows = db.execute("SELECT id, cost FROM generations").fetchall()
        db.close()
        assert sorted(r[0] for r in rows) == sorted(ids), "every finished generation was kept"
        leftover = list((data / "ledger-journal").glob("*.jsonl"))
        assert len(leftover) == 1, "the killed process's journal was replayed and removed"
        own = request("GET", again.base_url + "/key", headers=auth).json()["data"]
        assert abs(own["usage"] - 0.3) < 1e-9
        assert abs(own["limit_remaining"] - 0.7) < 1e-9  # the killed stream's hold is gone
        started = time.monotonic()
        raw = request(
            "POST",
            again.base_url + "/chat/completions",
            {"model": "paid/chat", "messages": [{"role": "user", "content": "x"}]},
            auth,
        )
        assert raw.status == 200 and time.monotonic() - started < 5
    finally:
        again.stop()
        mock.stop()


def test_a_grpc_stream_cut_by_shutdown_is_billed(tmp_path: Path) -> None:
    """SIGTERM while a gRPC stream runs: the server cuts it after its grace, and what
    the stream produced is billed and in the ledger after a restart (issue 16, item 9)."""
    mock = MockOpenAI().start()
    config = tmp_path / "switchyard.yaml"
    config.write_text(CONFIG.format(url=mock.base_url))
    data = tmp_path / "data"
    gateway = start_gateway(config, data)
    auth = (("authorization", f"Bearer {gateway.key}"),)
    try:
        with grpc.insecure_channel(gateway.grpc_target) as channel:
            stub = chat_pb2_grpc.ChatServiceStub(channel)
            stream = stub.Stream(
                chat_pb2.ChatRequest(
                    model="paid/slow-tokens",
                    messages=[chat_pb2.Message(role="user", text="x")],
                ),
                metadata=auth,
            )
            chunks = iter(stream)
            generation_id = next(chunks).id
            ticks = 1
            gateway.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(grpc.RpcError):  # cut: ends with a status
                for _ in chunks:
                    ticks += 1
        assert gateway.process.wait(timeout=60) is not None
    finally:
        gateway.stop()

    again = start_gateway(config, data, fresh=False)
    try:
        headers = {"Authorization": f"Bearer {again.key}"}
        found = request("GET", again.base_url + f"/generation?id={generation_id}", headers=headers)
        assert found.status == 200, "the cut stream's generation was lost"
        generation = found.json()["data"]
        assert generation["cancelled"] is True
        assert generation["tokens_completion"] >= ticks
        usage = request("GET", again.base_url + "/key", headers=headers).json()["data"]["usage"]
        assert usage == pytest.approx(generation["total_cost"])
        assert usage > 0
    finally:
        again.stop()
        mock.stop()
