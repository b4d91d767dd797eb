"""What a user's mistakes at start-up look like: one line naming what and where, exit 2.

Each case runs the real `switchyard` command. A port "in use" is held by a real gateway
(one process, or `--workers 2`), and a read-only data directory is made read-only for
real: by permissions, with the DAC override capabilities dropped when the tests run as
root (root ignores permission bits otherwise), and by a read-only bind mount in a
private mount namespace.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

import pytest

from tests.fixtures.gateway import SWITCHYARD, Gateway, free_port, start_gateway
from tests.fixtures.http import request
from tests.integration.test_cli import _workers


def switchyard(
    *args: str,
    env: dict[str, str] | None = None,
    prefix: Sequence[str] = (),
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHYARD_")}
    return subprocess.run(
        [*prefix, str(SWITCHYARD), *args],
        capture_output=True,
        text=True,
        env={**clean, **(env or {})},
        timeout=timeout,
        check=False,
    )


def serve(
    data_dir: Path, *args: str, prefix: Sequence[str] = ()
) -> subprocess.CompletedProcess[str]:
    """`serve` on two free ports (unless `args` names others: the last flag wins)."""
    ports = ["--http-port", str(free_port()), "--grpc-port", str(free_port())]
    return switchyard("--data-dir", str(data_dir), "serve", *ports, *args, prefix=prefix)


def the_error(result: subprocess.CompletedProcess[str]) -> str:
    """The one line a refused start prints; fails on a traceback or anything more."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("switchyard: error: "), lines[0]
    return lines[0]


def test_version_comes_from_the_package() -> None:
    result = switchyard("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"switchyard {metadata.version('switchyard')}"


# --- item 21: ports ---------------------------------------------------------------------


def test_a_second_gateway_on_the_same_ports_is_refused(
    service: Gateway, config_file: Path, tmp_path: Path
) -> None:
    pid = f"pid {service.process.pid} (switchyard"
    http = serve(
        tmp_path / "http", "--config", str(config_file), "--http-port", str(service.http_port)
    )
    line = the_error(http)
    assert f"HTTP port {service.http_port} on 127.0.0.1 is already in use by {pid}" in line
    grpc = serve(
        tmp_path / "grpc", "--config", str(config_file), "--grpc-port", str(service.grpc_port)
    )
    line = the_error(grpc)
    assert f"gRPC port {service.grpc_port} on 127.0.0.1 is already in use by {pid}" in line
    assert not (tmp_path / "grpc").exists(), "a refused start must leave no data dir behind"
    assert request("GET", service.base_url + "/models", headers=auth(service)).status == 200


def auth(gateway: Gateway) -> dict[str, str]:
    return {"Authorization": f"Bearer {gateway.key}"}


def test_only_the_workers_of_one_gateway_share_its_ports(config_file: Path, tmp_path: Path) -> None:
    first = start_gateway(config_file, tmp_path / "first", extra_args=("--workers", "2"))
    try:
        workers = _workers(first.process.pid)
        config = ("--config", str(config_file))
        for port_flag, port, what in (
            ("--http-port", first.http_port, "HTTP"),
            ("--grpc-port", first.grpc_port, "gRPC"),
        ):
            for extra in ((), ("--workers", "2")):
                line = the_error(serve(tmp_path / "second", *config, port_flag, str(port), *extra))
                assert f"{what} port {port} on 127.0.0.1 is already in use by pid " in line
                assert any(f"pid {pid} (" in line for pid in workers), (line, workers)
        for _ in range(10):  # the first gateway keeps all its traffic
            assert request("GET", first.base_url + "/models", headers=auth(first)).status == 200
    finally:
        first.stop()


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (("--http-port", "eighty"), {}, "argument --http-port: invalid port 'eighty'"),
        (("--grpc-port", "70000"), {}, "argument --grpc-port: invalid port '70000'"),
        (("--http-port", "0"), {}, "argument --http-port: invalid port '0'"),
        ((), {"SWITCHYARD_HTTP_PORT": "http"}, "SWITCHYARD_HTTP_PORT: invalid port 'http'"),
        ((), {"SWITCHYARD_GRPC_PORT": "-1"}, "SWITCHYARD_GRPC_PORT: invalid port '-1'"),
        ((), {"SWITCHYARD_WORKERS": "two"}, "SWITCHYARD_WORKERS: invalid count 'two'"),
        (("--shutdown-grace", "soon"), {}, "argument --shutdown-grace: invalid duration 'soon'"),
        (("--http-port", "9000", "--grpc-port", "9000"), {}, "ports are both 9000"),
    ],
)
def test_bad_ports_and_numbers_are_named(
    tmp_path: Path, args: tuple[str, ...], env: dict[str, str], expected: str
) -> None:
    result = switchyard("--data-dir", str(tmp_path / "d"), "serve", *args, env=env)
    assert expected in the_error(result)


# --- item 22: the data directory and the database ---------------------------------------


def test_a_data_dir_that_is_a_file_or_lies_under_one(tmp_path: Path) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("a file\n")
    assert the_error(serve(blocker)).endswith(
        f"data directory {blocker} is a file, not a directory"
    )
    under = blocker / "data"
    line = the_error(serve(under))
    assert line.endswith(f"data directory {under} cannot exist: {blocker} is a file")
    line = the_error(switchyard("--data-dir", str(under), "keys", "list"))
    assert f"{blocker} is a file" in line


def _without_dac_override() -> list[str]:
    """Run a command so that file permissions bind it, even as root."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: permissions cannot bind")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-all", "--"]


def test_a_data_dir_without_write_permission(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    data.chmod(0o555)
    try:
        line = the_error(serve(data, prefix=_without_dac_override()))
        assert line.endswith(f"data directory {data} is not writable (Permission denied)")
        keys = switchyard("--data-dir", str(data), "keys", "list", prefix=_without_dac_override())
        assert the_error(keys) == line
    finally:
        data.chmod(0o755)


def test_a_data_dir_on_a_read_only_mount(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    mount = f"mount --bind {data} {data} && mount -o remount,ro,bind {data}"
    probe = subprocess.run(
        ["unshare", "-m", "sh", "-c", f"{mount} && true"], capture_output=True, check=False
    )
    if probe.returncode != 0:
        pytest.skip(f"no private mount namespace here: {probe.stderr.decode().strip()}")
    command = 'exec "$@"'
    prefix = ["unshare", "-m", "sh", "-c", f"{mount} && {command}", "sh"]
    line = the_error(serve(data, prefix=prefix))
    assert line.endswith(f"data directory {data} is not writable (Read-only file system)")


def test_a_corrupt_database(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "switchyard.db").write_bytes(os.urandom(16_384))
    line = the_error(serve(data))
    assert f"database {data / 'switchyard.db'} is unreadable (file is not a database)" in line
    assert the_error(switchyard("--data-dir", str(data), "keys", "list")) == line


# --- item 26: the data directory is made by `serve` only, and private -------------------


@pytest.mark.parametrize(
    "command",
    [("keys", "list"), ("keys", "create", "--name", "x"), ("credits", "add", "key-1", "5")],
)
def test_only_serve_creates_the_data_dir(tmp_path: Path, command: tuple[str, ...]) -> None:
    missing = tmp_path / "typo" / "data"
    line = the_error(switchyard("--data-dir", str(missing), *command))
    assert f"data directory {missing} does not exist" in line
    assert not (tmp_path / "typo").exists()


def test_the_running_gateways_state_is_private(service: Gateway) -> None:
    files = [*service.data_dir.glob("switchyard.db*"), service.data_dir / "dev-key"]
    assert len(files) >= 2
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
