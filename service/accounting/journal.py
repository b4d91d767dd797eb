"""A write-ahead journal in a memory-mapped file: appending is a memory copy.

The ledger journals each generation on the request path before handing it to its
writer thread. Through a shared file mapping the bytes land in the kernel's page cache
at once, without a system call, so they survive the process being killed; measured
here, a write() per generation instead cost about a tenth of the gateway's CPU.
Records are newline-terminated; the unused rest of the file stays zero-filled.
"""

from __future__ import annotations

import mmap
import os
import uuid
from pathlib import Path

# Written pages stay mapped (and counted in RSS) until the file rotates: 1 MiB is ~6,000
# generations, a rotation every second or so at saturation, a flat RSS under load.
JOURNAL_BYTES = 1024 * 1024


class Journal:
    def __init__(self, directory: Path, size: int = JOURNAL_BYTES) -> None:
        self.path = directory / f"{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.ftruncate(fd, size)
            self._map = mmap.mmap(fd, size)
        finally:
            os.close(fd)
        self._size = size
        self._offset = 0

    def append(self, record: bytes) -> bool:
        """Add one record (ending in a newline); False when the file has no room left."""
        end = self._offset + len(record)
        if end > self._size:
            return False
        self._map[self._offset : end] = record
        self._offset = end
        return True

    def close(self) -> None:
        self._map.close()


def records(path: Path) -> list[bytes]:
    """The records in a journal file, the zero-filled tail left out."""
    return path.read_bytes().rstrip(b"\x00").splitlines()
