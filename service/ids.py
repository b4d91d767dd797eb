"""Random ids for requests and generations.

They must be unique, not secret (a generation is only shown to its own key). A PRNG
seeded once from the OS costs far less than uuid4's getrandom() call and UUID object per
id, which was measured at 3 % of a request's CPU. (gateway_http keeps its own, as it may
not import the service.)
"""

from __future__ import annotations

import os
import random

_ids = random.Random(os.urandom(32))
# A forked child must not repeat its parent's ids (workers are spawned today; a fork
# from elsewhere, or a future change, would otherwise give every child the same ones).
os.register_at_fork(after_in_child=lambda: _ids.seed(os.urandom(32)))


def random_hex() -> str:
    """128 random bits as 32 hex digits."""
    return f"{_ids.getrandbits(128):032x}"
