"""`switchyard keys ...` and the first-start development key, as a user meets them."""

from __future__ import annotations

import stat
import subprocess
import time
from pathlib import Path

from tests.fixtures.gateway import SWITCHYARD, Gateway, start_gateway
from tests.fixtures.http import request


def keys(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SWITCHYARD), "--data-dir", str(data_dir), "keys", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def models_status(gateway: Gateway, key: str) -> int:
    headers = {"Authorization": f"Bearer {key}"}
    return request("GET", gateway.base_url + "/models", headers=headers).status


def test_keys_create_list_revoke(service: Gateway) -> None:
    created = keys(service.data_dir, "create", "--name", "ci-bot")
    assert created.returncode == 0, created.stderr
    fields = dict(line.split(":", 1) for line in created.stdout.splitlines())
    key_id, plain = fields["id"].strip(), fields["key"].strip()
    assert plain.startswith("sk-sy-") and len(plain) > 40
    assert "cannot be shown again" in created.stderr

    listing = keys(service.data_dir, "list")
    assert listing.returncode == 0
    assert key_id in listing.stdout and "ci-bot" in listing.stdout
    assert plain not in listing.stdout, "list must never show a secret"
    assert plain[:12] in listing.stdout  # the display prefix, to recognise it

    assert models_status(service, plain) == 200  # the running gateway sees the new key

    revoked = keys(service.data_dir, "revoke", key_id)
    assert revoked.returncode == 0
    deadline = time.monotonic() + 5
    while models_status(service, plain) != 401:
        assert time.monotonic() < deadline, "a revoked key kept working"
        time.sleep(0.2)
    assert "revoked" in keys(service.data_dir, "list").stdout
    assert keys(service.data_dir, "revoke", key_id).returncode == 1  # already revoked
    assert models_status(service, service.key) == 200  # others unaffected


def test_first_start_creates_a_dev_key_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    gateway = start_gateway(None, data_dir)
    try:
        key_file = data_dir / "dev-key"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert stat.S_IMODE((data_dir / "admin-key").stat().st_mode) == 0o600
        assert gateway.key.startswith("sk-sy-")
        assert gateway.key in gateway.log(), "the first start prints the key"
        assert models_status(gateway, gateway.key) == 200
        body = request(
            "GET", gateway.base_url + "/models", headers={"Authorization": f"Bearer {gateway.key}"}
        ).json()
        # The embedded default: the built-in local models, no cloud provider.
        assert [m["id"] for m in body["data"]] == [
            "local/all-minilm-l6-v2",
            "local/smollm2-135m-instruct",
        ]
    finally:
        gateway.stop()

    again = start_gateway(None, data_dir, fresh=False)
    try:
        assert again.key == gateway.key
        assert gateway.key not in again.log(), "a key is printed only when it is created"
        listed = keys(data_dir, "list").stdout.strip().splitlines()
        assert len(listed) == 3  # the header, the dev key and the admin key
    finally:
        again.stop()


def test_database_holds_no_plain_key(service: Gateway) -> None:
    raw = b"".join(p.read_bytes() for p in service.data_dir.glob("switchyard.db*"))
    assert raw, "the key store was not found"
    assert service.key.encode() not in raw


def _workers(pid: int) -> list[int]:
    """Child processes of `pid` started as multiprocessing workers (not its helpers)."""
    kids = []
    for proc_stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = proc_stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (proc_stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == pid and b"spawn_main" in cmdline:
            kids.append(int(proc_stat.parent.name))
    return kids


def test_workers_share_both_ports(config_file: Path, tmp_path: Path) -> None:
    gateway = start_gateway(config_file, tmp_path / "data", extra_args=("--workers", "2"))
    try:
        workers = _workers(gateway.process.pid)
        assert len(workers) == 2, workers
        body = {"model": "mock/echo", "messages": [{"role": "user", "content": "hi"}]}
        headers = {"Authorization": f"Bearer {gateway.key}"}
        for _ in range(20):
            raw = request("POST", gateway.base_url + "/chat/completions", body, headers)
            assert raw.status == 200
        listed = keys(gateway.data_dir, "list").stdout.strip().splitlines()
        assert len(listed) == 3  # the dev and admin keys were created once, not per worker
    finally:
        gateway.stop()
    assert all(not Path(f"/proc/{pid}").exists() for pid in workers), "workers outlived stop"
