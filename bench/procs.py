"""Processes the harness starts (mock, gateway, null server), pinned with taskset.

Why pinning: the issue's targets are per core. The gateway gets CPU 0 to itself; the
mock upstream and every load client share CPU 1, so they never take the gateway's
cycles. `taskset` execs its command, so the pid we hold is the gateway's own, and
/proc/<pid>/stat then sums the CPU time of all its threads (gRPC core, ONNX, llama).

Only processes started here are ever stopped, by their own Popen handle.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the repository: `python -m bench.*` runs here
GATEWAY_CPU = 0
CLIENT_CPU = 1
PYTHON = sys.executable
SWITCHYARD = str(Path(sys.executable).parent / "switchyard")
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pinned(cpu: int | str, argv: list[str]) -> list[str]:
    return ["taskset", "-c", str(cpu), *argv]


def cpu_seconds(pid: int) -> float:
    """utime + stime of the whole process (all threads), from /proc/<pid>/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()  # the command name may contain spaces
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of stat(5)
    return (utime + stime) / _CLOCK_TICKS


def tree_cpu_seconds(pid: int) -> float:
    """`cpu_seconds` of a process and its live children (a gateway and its workers)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return cpu_seconds(pid) + sum(cpu_seconds(int(child)) for child in children)


def cpu_by_process() -> dict[int, tuple[str, float]]:
    """pid -> (command line, CPU seconds so far) for every process we can read."""
    out: dict[int, tuple[str, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            out[int(entry.name)] = (cmd.strip()[:160], cpu_seconds(int(entry.name)))
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile, or a kernel thread we cannot read
    return out


def busy_others(
    before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]], floor: float = 2.0
) -> list[dict[str, object]]:
    """Processes alive through the whole run, not ours, that used >= `floor` CPU seconds.

    Anything listed here competed with the benchmark for the two cores, so its numbers
    are pessimistic (the harness's own processes all start after `before` is taken).
    """
    me = os.getpid()
    busy = []
    for pid, (cmd, cpu) in after.items():
        if pid != me and pid in before and cpu - before[pid][1] >= floor:
            busy.append({"pid": pid, "cpu_s": round(cpu - before[pid][1], 1), "cmd": cmd})
    return sorted(busy, key=lambda b: -float(str(b["cpu_s"])))[:8]


def rss_kib(pid: int) -> int:
    """Resident set size from /proc/<pid>/status (VmRSS, in KiB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - loopback
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


@dataclass
class Proc:
    """A started process, its log file, and how to stop it."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def start(
    name: str,
    argv: list[str],
    log_dir: Path,
    ready: Callable[[], bool],
    *,
    timeout: float = 60,
    cwd: Path | None = None,
) -> Proc:
    """Start `argv`, logging to `log_dir/name.log`, and wait until `ready()` is true."""
    log_path = log_dir / f"{name}.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHYARD_")}
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd or ROOT
        )
    proc = Proc(name, process, log_path)
    deadline = time.monotonic() + timeout
    while not ready():
        if not proc.alive():
            raise RuntimeError(f"{name} exited early:\n{proc.log_tail()}")
        if time.monotonic() > deadline:
            proc.stop()
            raise RuntimeError(f"{name} did not come up in {timeout:.0f} s:\n{proc.log_tail()}")
        time.sleep(0.1)
    return proc


def start_mock(
    port: int,
    log_dir: Path,
    *,
    cpu: int = CLIENT_CPU,
    name: str = "mock",
    chunks: int = 20,
    delay_ms: float = 5.0,
) -> Proc:
    argv = [PYTHON, "-m", "bench.mock_upstream", "--port", str(port), "--chunks", str(chunks)]
    argv = pinned(cpu, [*argv, "--chunk-delay-ms", str(delay_ms)])
    return start(name, argv, log_dir, lambda: _http_ok(f"http://127.0.0.1:{port}/health"))


def start_forwarder(port: int, upstream_port: int, log_dir: Path) -> Proc:
    argv = [PYTHON, "-m", "bench.forwarder", "--port", str(port)]
    argv += ["--upstream", f"http://127.0.0.1:{upstream_port}"]
    return start("forwarder", pinned(GATEWAY_CPU, argv), log_dir, lambda: _port_open(port))


def start_null_grpc(port: int, log_dir: Path) -> Proc:
    argv = pinned(GATEWAY_CPU, [PYTHON, "-m", "bench.grpc_null", "--port", str(port)])
    return start("grpc-null", argv, log_dir, lambda: _port_open(port))


@dataclass
class Gateway:
    proc: Proc
    http_port: int
    grpc_port: int
    key: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"


def start_gateway(
    name: str,
    config: Path | None,
    data_dir: Path,
    log_dir: Path,
    *,
    channel: str = "inprocess",
    grpc_only: bool = False,
    workers: int = 1,
    cpus: int | str = GATEWAY_CPU,
) -> Gateway:
    """`switchyard serve` on CPU 0, fresh data dir, its dev key read from `dev-key`."""
    if data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)
    http_port, grpc_port = free_port(), free_port()
    argv = [SWITCHYARD, "serve"]
    if config is not None:
        argv += ["--config", str(config)]
    argv += ["--data-dir", str(data_dir), "--http-port", str(http_port)]
    argv += ["--grpc-port", str(grpc_port)]
    if workers > 1:
        argv += ["--workers", str(workers)]
    if grpc_only:
        argv.append("--grpc-only")
    elif channel != "inprocess":
        argv += ["--channel", channel]
    key_file = data_dir / "dev-key"

    def ready() -> bool:
        if not (key_file.exists() and _port_open(grpc_port)):
            return False
        return grpc_only or _http_ok(f"http://127.0.0.1:{http_port}/healthz")

    # Started from the data dir, so that no ./switchyard.yaml is picked up by accident.
    proc = start(name, pinned(cpus, argv), log_dir, ready, cwd=data_dir)
    return Gateway(proc, http_port, grpc_port, key_file.read_text().strip())
