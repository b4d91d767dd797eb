"""Where and on what the numbers were taken: machine, kernel, commit, versions, load.

A benchmark result without these cannot be compared with the next one. The load
average is recorded because the machine may be shared: other work on CPU 0 or 1
during a run makes its numbers pessimistic.
"""

from __future__ import annotations

import os
import platform
import resource
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from bench.procs import ROOT

PACKAGES = (
    "grpcio",
    "protobuf",
    "starlette",
    "uvicorn",
    "uvloop",
    "httptools",
    "aiohttp",
    "orjson",
    "onnxruntime",
    "tokenizers",
    "llama_cpp_python",
)


def _run(argv: list[str]) -> str:
    try:
        proc = subprocess.run(  # noqa: S603 - fixed argv, no shell
            argv, capture_output=True, text=True, timeout=30, check=False, cwd=ROOT
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (proc.stdout or proc.stderr).strip()


def cpu_model() -> str:
    for line in _run(["lscpu"]).splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def git_commit() -> str:
    """`git rev-parse --short HEAD`, plus -dirty if anything (even untracked) differs."""
    commit = _run(["git", "rev-parse", "--short", "HEAD"]) or "unknown"
    return commit + ("-dirty" if _run(["git", "status", "--porcelain"]) else "")


def versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    banner = (_run(["wrk", "-v"]).splitlines() or ["wrk not installed"])[
        0
    ]  # "wrk 4.1.0 [epoll] ..."
    out["wrk"] = banner.split(" [")[0].removeprefix("wrk ")
    return out


def cpu_totals() -> tuple[float, float]:
    """(user+nice+system, steal) CPU seconds of the whole machine, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    ticks = os.sysconf("SC_CLK_TCK")
    return (fields[0] + fields[1] + fields[2]) / ticks, (
        fields[7] if len(fields) > 7 else 0
    ) / ticks


def busy_seconds() -> float:
    """CPU seconds the whole machine was busy, interrupts included (/proc/stat).

    Loopback traffic is processed in softirq context, which this kernel accounts to
    no process: at saturation it is a real share of the cores.
    """
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(fields[:3] + fields[5:7]) / os.sysconf("SC_CLK_TCK")  # user..system, irqs


def own_cpu() -> float:
    """CPU seconds of this process and every child it has waited for (all of the run's)."""
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def foreign_cpu(start: tuple[float, float, float], wall: float) -> dict[str, float]:
    """CPU the rest of the machine used during the run: a measure of interference.

    `start` is (machine busy, steal, own) taken at the start; call this after every
    child has been reaped. Short-lived processes (a test suite someone runs meanwhile)
    are caught too, unlike with a process list. Interrupt time (irq, softirq) is left
    out on purpose: much of it is our own loopback traffic.
    """
    busy, steal = cpu_totals()
    other = (busy - start[0]) - (own_cpu() - start[2])
    cores = os.cpu_count() or 1
    return {
        "other_cpu_s": round(max(0.0, other), 1),
        "other_cpu_pct_of_machine": round(max(0.0, other) / (wall * cores) * 100, 1),
        "steal_s": round(steal - start[1], 1),
    }


def interpreter() -> str:
    """Which build of Python ran: the same version can differ by 10 % in CPU per request.

    A distribution's python3 is usually built with PGO and LTO into a static binary; a
    default pyenv build links libpython as a shared library and skips both.
    """
    with open("/proc/self/maps") as maps:
        shared = "libpython" in maps.read()
    return f"{os.path.realpath(sys.executable)}, {'shared' if shared else 'static'} libpython"


def describe() -> dict[str, object]:
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "cpu_model": cpu_model(),
        "cores": os.cpu_count() or 0,
        "kernel": platform.release(),
        "commit": git_commit(),
        "python": f"{platform.python_version()} ({interpreter()})",
        "versions": versions(),
        "loadavg_start": list(os.getloadavg()),
    }
