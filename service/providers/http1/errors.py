"""What can go wrong between us and an upstream, typed so adapters map it without guessing.

Timeouts are plain `TimeoutError`s, as asyncio raises them.
"""

from __future__ import annotations


class TransportError(Exception):
    """Base of every transport failure (not of an upstream's HTTP error answers)."""


class ConnectError(TransportError):
    """No connection could be made (refused, unreachable, DNS, TLS handshake)."""


class DisconnectedError(TransportError):
    """The upstream closed the connection before its answer's headers were complete."""


class BrokenBodyError(TransportError):
    """The answer's body ended early or could not be decoded."""


class MalformedResponseError(TransportError):
    """The bytes received are not HTTP/1.1."""
