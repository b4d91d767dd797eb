"""State files readable by their owner only, as the key files are.

The database holds key hashes, every key's policy and spending, and the ledger of who
asked for what: no business of other local users. SQLite creates a database with the
process's umask (0644 as a rule) and gives its `-wal` and `-shm` files the database's
own mode, so creating the database file 0600 before SQLite first opens it makes all
three private. A database made by an older release is tightened in place.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

MODE = 0o600
SIDECARS = ("-wal", "-shm", "-journal")


def private_database(path: Path) -> None:
    """Make sure `path` (and any SQLite sidecar file beside it) exists with mode 0600.

    An existing database is never opened here, only chmod-ed by name: closing any
    descriptor of a database file drops every POSIX lock this process holds on it,
    including those of SQLite connections already open (the key store's, when the
    ledger opens the same file), and another process could then checkpoint the WAL
    under them.
    """
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, MODE))
    for file in (path, *(path.with_name(path.name + suffix) for suffix in SIDECARS)):
        with contextlib.suppress(FileNotFoundError):
            if file.stat().st_mode & 0o777 != MODE:
                os.chmod(file, MODE)
