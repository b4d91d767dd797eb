"""What must hold before the gateway (or a CLI command) touches its state, said in words.

A data directory that is a file, lies under one, or cannot be written, and a database
file that is not SQLite, all used to surface as a traceback from deep inside pathlib or
sqlite3. They are checked here first, and each failure is a `StartupError`: one line
naming what is wrong and where, which the CLI prints and exits 2 on.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
from pathlib import Path

DATABASE = "switchyard.db"


class StartupError(Exception):
    """The gateway cannot start (or a command cannot run); the message says why and where."""


def _file_above(path: Path) -> Path | None:
    """The nearest existing ancestor of `path` that is not a directory, if any."""
    for parent in path.parents:
        if parent.exists():
            return None if parent.is_dir() else parent
        if parent.is_symlink():  # a dangling link: nothing can be made beneath it
            return parent
    return None


def prepare_data_dir(path: Path, *, create: bool) -> None:
    """Check (and with `create`, make, mode 0700) the data directory; it must be writable.

    Only `serve` creates it: a typo in `--data-dir` given to `keys` or `credits` would
    otherwise make an empty directory and a fresh database, and answer "no key".
    """
    if path.exists() and not path.is_dir():
        raise StartupError(f"data directory {path} is a file, not a directory")
    if not path.exists():
        above = _file_above(path)
        if above is not None:
            raise StartupError(f"data directory {path} cannot exist: {above} is a file")
        if not create:
            raise StartupError(
                f"data directory {path} does not exist (`switchyard serve` creates it; "
                "check --data-dir or SWITCHYARD_DATA_DIR)"
            )
        try:
            path.mkdir(mode=0o700, parents=True)
        except FileExistsError:
            pass  # made by a concurrent start
        except OSError as exc:
            raise StartupError(
                f"data directory {path} cannot be created: {exc.strerror or exc}"
            ) from None
    _check_writable(path)


def _check_writable(path: Path) -> None:
    """Create and remove a file: the only honest test (root passes `access()` checks on
    directories it cannot write, and a read-only mount is not a permission)."""
    probe = path / f".write-test-{os.getpid()}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        probe.unlink(missing_ok=True)
        return
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise StartupError(f"data directory {path} is not writable ({reason})") from None
        raise StartupError(f"data directory {path} cannot be used ({reason})") from None
    os.close(fd)
    with contextlib.suppress(OSError):
        probe.unlink()


def check_database(data_dir: Path) -> None:
    """Refuse a `switchyard.db` that SQLite cannot read as a database (a corrupt or
    foreign file), before any store opens it and fails with a traceback."""
    path = data_dir / DATABASE
    if not path.exists():
        return
    if not path.is_file():
        raise StartupError(f"database {path} is not a file")
    try:
        db = sqlite3.connect(path)
    except sqlite3.Error as exc:
        raise StartupError(f"database {path} cannot be opened ({exc})") from None
    try:
        db.execute("PRAGMA schema_version").fetchone()  # reads (and checks) the header
    except sqlite3.DatabaseError as exc:
        raise StartupError(
            f"database {path} is unreadable ({exc}); move it away to start with an empty one"
        ) from None
    finally:
        db.close()
