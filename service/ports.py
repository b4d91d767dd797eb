"""The ports the gateway listens on: bound exclusively, and named with their holder when taken.

SO_REUSEPORT lets any process of the same user bind a port that is already listening,
and the kernel then splits new connections between them: a second `switchyard serve`
on the same ports would start without a word and take part of the first one's traffic.
So nothing here sets it. The HTTP socket is bound once, by the process that starts the
gateway; workers inherit that one socket. gRPC cannot adopt a socket, so its port is
checked free here (an exclusive bind, released at once) and then bound by gRPC itself:
by one process without SO_REUSEPORT, or by the workers of one gateway with it (see
launcher.py).

A port that cannot be bound is reported in one line: which port, on which address, and
(best effort, from /proc) which process holds it.
"""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path

from service.startup import StartupError

LISTEN_BACKLOG = 4096
_TCP_LISTEN = "0A"  # the state column of /proc/net/tcp{,6}
_SHOWN_HOLDERS = 3


def _address(host: str, port: int, what: str) -> tuple[socket.AddressFamily, tuple[str, int]]:
    try:
        found = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise StartupError(f"{what} host {host!r} cannot be resolved ({exc.strerror})") from None
    family, _, _, _, address = found[0]
    return family, (str(address[0]), int(address[1]))


def _bound(host: str, port: int, what: str) -> socket.socket:
    """A socket bound to host:port, exclusively (SO_REUSEADDR only: Linux still refuses
    an address another socket listens on, but not one left in TIME_WAIT)."""
    family, address = _address(host, port, what)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise bind_failure(what, host, port, exc) from None
    return sock


def listen(host: str, port: int, what: str = "HTTP") -> socket.socket:
    """The listening socket for `port`, owned by this gateway alone (non-blocking)."""
    sock = _bound(host, port, what)
    sock.listen(LISTEN_BACKLOG)
    sock.setblocking(False)
    return sock


def ensure_free(host: str, port: int, what: str = "gRPC") -> None:
    """Fail, naming the holder, when `port` is taken; otherwise leave it for its server."""
    _bound(host, port, what).close()


def bind_failure(what: str, host: str, port: int, exc: OSError | None = None) -> StartupError:
    """The one-line error for a port that cannot be bound (`exc` None: the reason is not
    known, as when gRPC fails to bind; it is then asked of the kernel again)."""
    where = f"{what} port {port} on {host or '*'}"
    if exc is None:
        try:
            ensure_free(host, port, what)
        except StartupError as error:
            return error
        return StartupError(f"{where} cannot be bound")
    if exc.errno == errno.EADDRINUSE:
        held = holders(port)
        by = f" by {held}" if held else ""
        return StartupError(f"{where} is already in use{by}")
    if exc.errno == errno.EACCES:
        return StartupError(f"{where} needs privileges to bind ({exc.strerror})")
    return StartupError(f"{where} cannot be bound ({exc.strerror or exc})")


def _listening_inodes(port: int) -> set[str]:
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] != _TCP_LISTEN:
                continue
            if int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes


def _command(pid: int) -> str:
    """The process's command line, short: `switchyard serve ...`, not the interpreter's path."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
    except OSError:
        return "?"
    argv = [os.path.basename(word.decode(errors="replace")) for word in raw[:2]]
    argv += [word.decode(errors="replace") for word in raw[2:]]
    if len(argv) > 1 and argv[0].startswith("python"):
        argv = argv[1:]  # `python .../switchyard serve`: the script says more
    text = " ".join(argv)
    return text if len(text) <= 80 else text[:77] + "..."


def holders(port: int) -> str:
    """Who listens on `port`: "pid 123 (switchyard serve ...)", from /proc; "" when that
    cannot be seen (another PID namespace, or no permission to read the process)."""
    sockets = {f"socket:[{inode}]" for inode in _listening_inodes(port)}
    if not sockets:
        return ""
    pids: list[int] = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if any(os.readlink(fd) in sockets for fd in (proc / "fd").iterdir()):
                pids.append(int(proc.name))
        except OSError:  # gone meanwhile, or not ours to look at
            continue
    if not pids:
        return ""
    pids.sort()
    shown = ", ".join(f"pid {pid} ({_command(pid)})" for pid in pids[:_SHOWN_HOLDERS])
    more = len(pids) - _SHOWN_HOLDERS
    return shown + (f" and {more} more" if more > 0 else "")
