"""The semantic cache's index: unit vectors per bucket, searched by one matrix product.

Why a flat matrix and not an approximate index (HNSW, IVF): a bucket holds the entries
of one model, one set of parameters and one earlier conversation, so most searches scan
few rows; the worst case, every entry in one bucket, is a single float32 matrix-vector
product that numpy's BLAS runs at memory speed (384 floats a row: 100,000 rows are
150 MB, scanned in a few milliseconds; bench/cache.py measures it). It is exact, so
the threshold means what the quality check measured, it costs no dependency and no
build, and adding or removing a row is O(1) (append; swap with the last row). Scans of
large buckets run on a worker thread (numpy releases the GIL), off the event loop.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

DIMS = 384
# Buckets with more rows than this are scanned on a thread rather than on the loop
# (about half a millisecond of scan on this machine).
THREAD_ROWS = 20_000


@dataclass(slots=True)
class _Bucket:
    matrix: np.ndarray = field(default_factory=lambda: np.zeros((16, DIMS), np.float32))
    keys: list[str] = field(default_factory=list)
    owners: list[tuple[str, str]] = field(default_factory=list)  # (model, partition)
    texts: list[str] = field(default_factory=list)  # what was embedded (for the guard)
    rows: dict[str, int] = field(default_factory=dict)
    version: int = 0

    def add(self, key: str, vector: np.ndarray, owner: tuple[str, str], text: str) -> None:
        row = self.rows.get(key)
        if row is None:
            row = len(self.keys)
            if row == len(self.matrix):
                grown = np.zeros((2 * row, DIMS), np.float32)
                grown[:row] = self.matrix
                self.matrix = grown
            self.keys.append(key)
            self.owners.append(owner)
            self.texts.append(text)
            self.rows[key] = row
        self.matrix[row] = vector
        self.version += 1

    def remove(self, key: str) -> None:
        row = self.rows.pop(key, None)
        if row is None:
            return
        last = len(self.keys) - 1
        if row != last:  # the last row takes the freed place
            moved = self.keys[last]
            self.matrix[row] = self.matrix[last]
            self.keys[row] = moved
            self.owners[row] = self.owners[last]
            self.texts[row] = self.texts[last]
            self.rows[moved] = row
        self.keys.pop()
        self.owners.pop()
        self.texts.pop()
        self.version += 1


# The nearest rows a search returns: the best may fail the lexical guard, the next not.
TOP = 4


@dataclass(frozen=True, slots=True)
class Match:
    key: str
    score: float
    text: str


def _best(matrix: np.ndarray, n: int, vector: np.ndarray, threshold: float) -> list[int]:
    """The rows (at most TOP) scoring at least `threshold`, best first."""
    scores = matrix[:n] @ vector
    rows = np.argpartition(scores, n - TOP)[n - TOP :] if n > TOP else np.arange(n)
    rows = rows[scores[rows] >= threshold]
    return [int(r) for r in rows[np.argsort(-scores[rows])]]


class SemanticIndex:
    """Every bucket's vectors, bounded in total (the oldest rows go first)."""

    def __init__(self, max_entries: int) -> None:
        self._buckets: dict[str, _Bucket] = {}
        self._order: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._max = max_entries

    def __len__(self) -> int:
        return len(self._order)

    def add(
        self, bucket: str, key: str, vector: np.ndarray, model: str, partition: str, text: str
    ) -> None:
        self._buckets.setdefault(bucket, _Bucket()).add(key, vector, (model, partition), text)
        self._order[(bucket, key)] = None
        self._order.move_to_end((bucket, key))
        while len(self._order) > self._max:
            old_bucket, old_key = self._order.popitem(last=False)[0]
            self._remove_row(old_bucket, old_key)

    def remove(self, bucket: str, key: str) -> None:
        if self._order.pop((bucket, key), ...) is not ...:
            self._remove_row(bucket, key)

    def _remove_row(self, bucket: str, key: str) -> None:
        found = self._buckets.get(bucket)
        if found is None:
            return
        found.remove(key)
        if not found.keys:
            del self._buckets[bucket]

    async def search(self, bucket: str, vector: np.ndarray, threshold: float) -> list[Match]:
        """The entries of `bucket` nearest to `vector` (unit length) whose cosine
        similarity reaches `threshold`, best first."""
        found = self._buckets.get(bucket)
        if found is None or not found.keys:
            return []
        n, version = len(found.keys), found.version
        if n <= THREAD_ROWS:
            rows = _best(found.matrix, n, vector, threshold)
        else:
            rows = await asyncio.to_thread(_best, found.matrix, n, vector, threshold)
        matches = []
        for row in rows:
            moved = found.version != version  # rows moved meanwhile: judge what is there now
            if moved and (row >= len(found.keys) or float(found.matrix[row] @ vector) < threshold):
                continue
            score = float(found.matrix[row] @ vector)
            matches.append(Match(found.keys[row], score, found.texts[row]))
        return matches

    def purge(self, model: str | None, partition: str | None) -> int:
        doomed = [
            (name, key)
            for name, bucket in self._buckets.items()
            for key, (owner_model, owner_partition) in zip(bucket.keys, bucket.owners, strict=True)
            if (model is None or owner_model == model)
            and (partition is None or owner_partition == partition)
        ]
        for name, key in doomed:
            self.remove(name, key)
        return len(doomed)
