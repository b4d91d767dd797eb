"""API key format and hashing.

Keys are `sk-sy-` plus 256 random bits, so a plain SHA-256 is a sound at-rest hash (no
password-style stretching is needed for a secret that cannot be guessed). Only the hash
and a short display prefix are ever stored.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

KEY_PREFIX = "sk-sy-"
DISPLAY_CHARS = 12


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def display_prefix(key: str) -> str:
    """What lists show of a key: enough to recognise it, far too little to use it."""
    return key[:DISPLAY_CHARS] + "..."


def same_hash(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("ascii"), b.encode("ascii"))


def bearer_token(header: str) -> str | None:
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
