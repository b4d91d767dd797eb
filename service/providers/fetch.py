"""Safe fetching of attachment URLs, for adapters whose upstream needs the bytes inline.

Some upstreams (Gemini, for one) cannot read an arbitrary image URL, so the gateway
fetches it on the client's behalf. That turns the gateway into a proxy the client can
point anywhere: the classic server-side request forgery, where an image URL of
http://169.254.169.254/ reads the cloud metadata service from inside our network. So
every fetch here is bounded (size, time, content type) and refuses non-public addresses:
IP literals before connecting, host names after resolving them (and the connection then
goes only to the address that was vetted, so DNS cannot answer differently between the
check and the connect), and again on every redirect hop, which are followed by hand.

Every refusal is the client's to fix, so it is a `ProviderError` with status 400 and the
JSON path of the offending part as `param`. Its message says what failed in words and
never names an address the client did not give (a host's resolved address, say, would
map our internal network for anyone who asks); the exception behind a failed fetch goes
to the log only.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from service.config import ConfigError
from service.providers.errors import FailureKind, ProviderError, in_words, internals

MIB = 1024 * 1024
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CHUNK = 64 * 1024
DEFAULT_MAX_BYTES = 20 * MIB
DEFAULT_MAX_TOTAL_BYTES = 50 * MIB
DEFAULT_TIMEOUT = 30.0
_NUMERIC = socket.AI_NUMERICHOST | socket.AI_NUMERICSERV
# NAT64's well-known prefix carries an IPv4 address that a NAT64 gateway would reach.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_OPTIONS = frozenset(
    {"allow_private_networks", "allow_networks", "max_bytes", "max_total_bytes", "timeout"}
)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class FetchLimits:
    """What one provider's fetches may do; set by the operator under the `fetch` option."""

    max_bytes: int = DEFAULT_MAX_BYTES  # one attachment
    max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES  # all attachments of one request
    timeout: float = DEFAULT_TIMEOUT  # one fetch, redirects included
    max_redirects: int = 3
    allow_private_networks: bool = False  # loopback, RFC 1918/4193, link-local, CGNAT...
    allow_networks: tuple[Network, ...] = ()  # narrower: just these networks

    @classmethod
    def from_options(cls, value: Any, where: str) -> FetchLimits:
        """Validate the provider's `fetch` option; a bad one fails start-up, naming `where`."""
        if value is None:
            return cls()
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping")
        unknown = sorted(str(k) for k in set(value) - _OPTIONS)
        if unknown:
            raise ConfigError(f"{where}: unknown option(s) {', '.join(unknown)}")
        allow = value.get("allow_private_networks", False)
        if not isinstance(allow, bool):
            raise ConfigError(f"{where}.allow_private_networks: expected a boolean")
        networks = value.get("allow_networks", [])
        if not isinstance(networks, list) or not all(isinstance(n, str) for n in networks):
            raise ConfigError(f"{where}.allow_networks: expected a list of CIDR strings")
        try:
            parsed = tuple(ipaddress.ip_network(n, strict=False) for n in networks)
        except ValueError as exc:
            raise ConfigError(f"{where}.allow_networks: {exc}") from exc
        return cls(
            max_bytes=_positive_int(value, "max_bytes", DEFAULT_MAX_BYTES, where),
            max_total_bytes=_positive_int(value, "max_total_bytes", DEFAULT_MAX_TOTAL_BYTES, where),
            timeout=_positive_float(value, "timeout", DEFAULT_TIMEOUT, where),
            allow_private_networks=allow,
            allow_networks=parsed,
        )


def _positive_int(node: Mapping[str, Any], key: str, default: int, where: str) -> int:
    value = node.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"{where}.{key}: expected a positive integer")
    return value


def _positive_float(node: Mapping[str, Any], key: str, default: float, where: str) -> float:
    value = node.get(key, default)
    if not isinstance(value, int | float) or isinstance(value, bool) or not value > 0:
        raise ConfigError(f"{where}.{key}: expected a positive number")
    return float(value)


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, 6to4, NAT64), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def address_problem(ip: IPAddress, limits: FetchLimits) -> str | None:
    """Why the gateway may not connect to `ip`, or None when it may."""
    if any(ip.version == net.version and ip in net for net in limits.allow_networks):
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_v4(ip)
        if inner is not None:
            return address_problem(inner, limits)
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_loopback:
        kind = "a loopback address"
    elif ip.is_link_local:
        kind = "a link-local address"
    elif ip.is_private:
        kind = "a private address"
    elif ip.is_reserved or not ip.is_global:
        kind = "a reserved address"
    else:
        return None
    return None if limits.allow_private_networks else kind


def _fetch_failure(exc: aiohttp.ClientError) -> str:
    """Why a fetch failed, in words (aiohttp's errors past the connect, then the socket's)."""
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "the answer broke off"
    if isinstance(exc, aiohttp.ClientResponseError):
        return "the answer is not valid HTTP"
    return in_words(exc)


@dataclass(frozen=True, slots=True)
class Fetched:
    data: bytes
    media_type: str  # from Content-Type, lower-cased, without parameters
    url: str  # after redirects


class _PinnedResolver(AbstractResolver):
    """Answers only with addresses that were vetted, so the connection goes where we looked."""

    def __init__(self) -> None:
        self._pinned: dict[str, list[ResolveResult]] = {}

    def pin(self, host: str, results: list[ResolveResult]) -> None:
        self._pinned[host] = results

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = self._pinned.get(host)
        if not results:
            raise OSError(f"{host} was not vetted before connecting")
        return [ResolveResult(**{**r, "port": port or r["port"]}) for r in results]

    async def close(self) -> None:
        self._pinned.clear()


class AttachmentFetcher:
    """Fetches client-supplied URLs within `FetchLimits`; one instance per provider."""

    def __init__(self, provider: str, limits: FetchLimits) -> None:
        self.provider = provider
        self.limits = limits

    def _refuse(self, param: str, reason: str, detail: str | None = None) -> ProviderError:
        return ProviderError(
            FailureKind.STATUS,
            self.provider,
            f"Cannot use the URL at '{param}': {reason}.",
            status=400,
            param=param,
            detail=detail,  # for the log only
        )

    async def fetch(
        self,
        url: str,
        *,
        param: str,
        allowed_types: Sequence[str],
        max_bytes: int | None = None,
        deadline: float | None = None,
    ) -> Fetched:
        """GET `url` (redirects included) within the limits, or raise a 400 naming `param`.

        `allowed_types` are media-type prefixes ("image/") or exact types
        ("application/pdf"); `max_bytes` can only lower the configured limit; `deadline`
        is the request's (event-loop time), which also bounds the fetch.
        """
        limit = (
            self.limits.max_bytes if max_bytes is None else min(max_bytes, self.limits.max_bytes)
        )
        budget, by_deadline = self.limits.timeout, False
        if deadline is not None:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining < budget:
                budget, by_deadline = max(0.0, remaining), True
        try:
            target = URL(url)
        except (ValueError, TypeError):
            raise self._refuse(param, "it is not a valid URL") from None
        resolver = _PinnedResolver()
        # A connector per fetch: no pooled connection or DNS cache outlives the vetting.
        connector = aiohttp.TCPConnector(resolver=resolver, use_dns_cache=False, force_close=True)
        try:
            async with (
                aiohttp.ClientSession(
                    connector=connector, trust_env=False, auto_decompress=False
                ) as session,
                asyncio.timeout(budget),
            ):
                return await self._follow(session, resolver, target, param, allowed_types, limit)
        except TimeoutError:
            if by_deadline:
                raise ProviderError(
                    FailureKind.TIMEOUT,
                    self.provider,
                    f"the request's time ran out while fetching '{param}'",
                ) from None
            raise self._refuse(param, f"it did not answer within {budget:g} s") from None
        except aiohttp.ClientError as exc:
            reason = f"it cannot be fetched: {_fetch_failure(exc)}"
            raise self._refuse(param, reason, internals(exc)) from None

    async def _follow(
        self,
        session: aiohttp.ClientSession,
        resolver: _PinnedResolver,
        url: URL,
        param: str,
        allowed_types: Sequence[str],
        limit: int,
    ) -> Fetched:
        accept = ", ".join(t + "*" if t.endswith("/") else t for t in allowed_types)
        headers = {"Accept": accept, "Accept-Encoding": "identity"}
        for _ in range(self.limits.max_redirects + 1):
            await self._vet(url, resolver, param)
            async with session.get(url, allow_redirects=False, headers=headers) as response:
                if response.status in _REDIRECTS:
                    location = response.headers.get("Location")
                    response.close()
                    if not location:
                        raise self._refuse(param, "it redirects without a Location")
                    try:
                        url = url.join(URL(location))
                    except ValueError:
                        raise self._refuse(param, "it redirects to an invalid URL") from None
                    continue
                if not 200 <= response.status < 300:
                    response.close()
                    raise self._refuse(param, f"it answered HTTP {response.status}")
                return await self._read(response, url, param, allowed_types, limit)
        raise self._refuse(param, f"it redirects more than {self.limits.max_redirects} times")

    async def _vet(self, url: URL, resolver: _PinnedResolver, param: str) -> None:
        """Refuse `url` unless every address it leads to is allowed; pin those addresses."""
        if url.scheme not in ("http", "https") or not url.is_absolute():
            raise self._refuse(param, "only http and https URLs can be fetched")
        host = url.raw_host or ""
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            literal: IPAddress | None = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            literal = None
        if literal is not None:  # aiohttp connects to literals without resolving
            problem = address_problem(literal, self.limits)
            if problem:
                raise self._refuse(param, f"{literal} is {problem}")
            return
        if not host:
            raise self._refuse(param, "it names no host")
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError):
            raise self._refuse(param, f"the host {host} cannot be resolved") from None
        results: list[ResolveResult] = []
        for family, _, proto, _, sockaddr in infos:
            address = str(sockaddr[0])
            ip = ipaddress.ip_address(address.split("%", 1)[0])
            problem = address_problem(ip, self.limits)
            if problem:
                raise self._refuse(
                    param, f"the host {host} resolves to {problem}", f"{host} resolves to {ip}"
                )
            results.append(
                ResolveResult(
                    hostname=host,
                    host=address,
                    port=port,
                    family=family,
                    proto=proto,
                    flags=_NUMERIC,
                )
            )
        if not results:
            raise self._refuse(param, f"the host {host} cannot be resolved")
        resolver.pin(host, results)
        if url.host and url.host != host:
            resolver.pin(url.host, results)

    async def _read(
        self,
        response: aiohttp.ClientResponse,
        url: URL,
        param: str,
        allowed_types: Sequence[str],
        limit: int,
    ) -> Fetched:
        """The body, checked before reading where possible and never read past `limit`."""
        media = response.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
        if not media or not any(
            media.startswith(t) if t.endswith("/") else media == t for t in allowed_types
        ):
            response.close()
            wanted = " or ".join(t + "*" if t.endswith("/") else t for t in allowed_types)
            raise self._refuse(param, f"its content type is {media or 'missing'}, not {wanted}")
        encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            response.close()
            raise self._refuse(param, f"it is sent {encoding}-encoded")
        length = response.content_length
        if length is not None and length > limit:
            response.close()  # refused before a byte of the body is read
            raise self._refuse(param, f"it is {length} bytes, more than the limit of {limit}")
        body = bytearray()
        async for chunk in response.content.iter_chunked(_CHUNK):
            body += chunk
            if len(body) > limit:
                response.close()  # drops the connection instead of draining the rest
                raise self._refuse(param, f"it is larger than the limit of {limit} bytes")
        return Fetched(data=bytes(body), media_type=media, url=str(url))
