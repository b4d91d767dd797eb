"""A process killed with SIGKILL: its reservations lapse, its finished generations stay."""

from __future__ import annotations

import signal
import sqlite3
import time
from pathlib import Path

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
