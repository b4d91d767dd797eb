"""The attachment fetcher: address vetting, limits, redirects, content types.

No test here sends a packet to a non-loopback address: refusals of private ranges use
IP literals (refused before any connection), and every fetch that does connect goes to
an aiohttp server on 127.0.0.1, allowed by the limits under test.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest
from aiohttp import ClientConnectionResetError, web

from service.config import ConfigError
from service.providers.errors import FailureKind, ProviderError
from service.providers.fetch import AttachmentFetcher, FetchLimits, address_problem

PARAM = "messages[0].content[1].image_url.url"
PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452")
CLOSED = (ConnectionError, ClientConnectionResetError, asyncio.CancelledError)
OPEN = FetchLimits(allow_private_networks=True)


def fetcher(limits: FetchLimits = OPEN) -> AttachmentFetcher:
    return AttachmentFetcher("gem", limits)


STRICT = FetchLimits()


async def refused(
    url: str, limits: FetchLimits = STRICT, types: tuple[str, ...] = ("image/",)
) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        await fetcher(limits).fetch(url, param=PARAM, allowed_types=types)
    err = caught.value
    assert err.kind is FailureKind.STATUS and err.status == 400 and err.param == PARAM
    assert err.client_fault
    return err


@dataclass
class Served:
    """What the test server saw of one streamed body."""

    written: int = 0
    aborted: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)


@asynccontextmanager
async def server(
    routes: Mapping[str, Callable[[web.Request], Awaitable[web.StreamResponse]]],
) -> AsyncIterator[str]:
    app = web.Application()
    for path, handler in routes.items():
        app.router.add_get(path, handler)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def png(_: web.Request) -> web.StreamResponse:
    return web.Response(body=PNG, content_type="image/png")


def big(
    served: Served, total: int, length: bool
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """A handler streaming `total` bytes of "image", counting what it got to write."""

    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "image/png"})
        if length:
            resp.content_length = total
        await resp.prepare(request)
        block = b"\0" * 65536
        try:
            while served.written < total:
                await resp.write(block)
                served.written += len(block)
        except CLOSED:
            served.aborted = True
        finally:
            served.done.set()
        return resp

    return handler


# --- vetting, before any connection ---------------------------------------------------


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("http://127.0.0.1/cat.png", "loopback"),
        ("http://127.8.9.10:8080/cat.png", "loopback"),
        ("http://[::1]/cat.png", "loopback"),
        ("http://10.0.0.1/cat.png", "private"),
        ("http://192.168.1.1/cat.png", "private"),
        ("http://172.16.5.4/cat.png", "private"),
        ("http://[fc00::1]/cat.png", "private"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[fe80::1]/cat.png", "link-local"),
        ("http://0.0.0.0/cat.png", "unspecified"),
        ("http://224.0.0.1/cat.png", "multicast"),
        ("http://100.64.0.1/cat.png", "reserved"),
        ("http://[::ffff:10.0.0.1]/cat.png", "private"),  # IPv4-mapped
        ("http://[64:ff9b::a9fe:a9fe]/cat.png", "link-local"),  # NAT64 of 169.254.169.254
        ("http://[2002:7f00:1::]/cat.png", "loopback"),  # 6to4 of 127.0.0.1
        # Numeric host spellings resolve (without DNS) to loopback, then are refused.
        ("http://2130706433/cat.png", "loopback"),
        ("http://0x7f000001/cat.png", "loopback"),
        ("http://127.1/cat.png", "loopback"),
    ],
)
def test_non_public_literals_are_refused(url: str, kind: str) -> None:
    err = asyncio.run(refused(url))
    assert kind in err.message and PARAM in err.message


@pytest.mark.parametrize(
    "url",
    ["file:///etc/passwd", "ftp://example.com/a.png", "gopher://x/", "/relative.png", "http://"],
)
def test_only_http_urls(url: str) -> None:
    asyncio.run(refused(url))


def test_localhost_is_refused_after_resolution() -> None:
    err = asyncio.run(refused("http://localhost:9/cat.png"))
    assert "localhost resolves to a loopback address" in err.message
    # The address a name resolves to is ours to know: telling it would let a client map
    # the gateway's network by asking for names. It is in the log's detail only.
    assert "127.0.0.1" not in err.message and "::1" not in err.message
    assert err.detail is not None and "localhost resolves to" in err.detail


def test_address_policy() -> None:
    public = ipaddress.ip_address("8.8.8.8")
    assert address_problem(public, FetchLimits()) is None
    assert address_problem(ipaddress.ip_address("2001:4860:4860::8888"), FetchLimits()) is None
    loopback = ipaddress.ip_address("127.0.0.1")
    assert address_problem(loopback, FetchLimits()) == "a loopback address"
    assert address_problem(loopback, OPEN) is None
    only = FetchLimits(allow_networks=(ipaddress.ip_network("127.0.0.0/8"),))
    assert address_problem(loopback, only) is None
    assert address_problem(ipaddress.ip_address("10.1.2.3"), only) == "a private address"
    # Allowing private networks still never allows these.
    assert address_problem(ipaddress.ip_address("0.0.0.0"), OPEN) == "an unspecified address"
    assert address_problem(ipaddress.ip_address("ff02::1"), OPEN) == "a multicast address"


def test_options() -> None:
    where = "config.providers.gem.fetch"
    assert FetchLimits.from_options(None, where) == FetchLimits()
    limits = FetchLimits.from_options(
        {
            "allow_private_networks": True,
            "max_bytes": 1024,
            "timeout": 2,
            "allow_networks": ["10.0.0.0/8"],
        },
        where,
    )
    assert limits.allow_private_networks and limits.max_bytes == 1024 and limits.timeout == 2.0
    assert limits.allow_networks == (ipaddress.ip_network("10.0.0.0/8"),)
    for bad, path in [
        ({"max_bytes": 0}, "max_bytes"),
        ({"max_bytes": True}, "max_bytes"),
        ({"timeout": "fast"}, "timeout"),
        ({"allow_private_networks": "yes"}, "allow_private_networks"),
        ({"allow_networks": ["not-a-net"]}, "allow_networks"),
        ({"max_redirect": 5}, "unknown option"),
        ([1], "expected a mapping"),
    ]:
        with pytest.raises(ConfigError, match=path):
            FetchLimits.from_options(bad, where)


# --- fetching from a loopback server, allowed by the limits ---------------------------


def test_allowed_fetch_by_ip_and_by_resolved_name() -> None:
    async def scenario() -> None:
        async with server({"/cat.png": png}) as base:
            got = await fetcher().fetch(base + "/cat.png", param=PARAM, allowed_types=("image/",))
            assert got.data == PNG and got.media_type == "image/png"
            # A host name goes through resolution, vetting and the pinned resolver.
            by_name = base.replace("127.0.0.1", "localhost") + "/cat.png"
            got = await fetcher().fetch(by_name, param=PARAM, allowed_types=("image/png",))
            assert got.data == PNG
            narrow = FetchLimits(allow_networks=(ipaddress.ip_network("127.0.0.1/32"),))
            got = await fetcher(narrow).fetch(
                base + "/cat.png", param=PARAM, allowed_types=("image/",)
            )
            assert got.data == PNG

    asyncio.run(scenario())


def test_oversized_body_with_content_length_is_refused_unread() -> None:
    async def scenario() -> None:
        served = Served()
        total = 64 * 1024 * 1024
        async with server({"/big.png": big(served, total, length=True)}) as base:
            limits = FetchLimits(allow_private_networks=True, max_bytes=256 * 1024)
            err = await refused(base + "/big.png", limits)
            assert f"it is {total} bytes" in err.message
            await asyncio.wait_for(served.done.wait(), 10)
        assert served.aborted and served.written < total // 4

    asyncio.run(scenario())


def test_oversized_body_without_content_length_stops_at_the_limit() -> None:
    async def scenario() -> None:
        served = Served()
        total = 64 * 1024 * 1024
        async with server({"/big.png": big(served, total, length=False)}) as base:
            limits = FetchLimits(allow_private_networks=True, max_bytes=256 * 1024)
            err = await refused(base + "/big.png", limits)
            assert "larger than the limit of 262144 bytes" in err.message
            await asyncio.wait_for(served.done.wait(), 10)
        # The rest was never read: the server saw the connection drop long before the end.
        assert served.aborted and served.written < total // 4

    asyncio.run(scenario())


def test_max_bytes_per_call_can_only_lower_the_limit() -> None:
    async def scenario() -> None:
        async with server({"/cat.png": png}) as base:
            with pytest.raises(ProviderError, match="more than the limit of 4"):
                await fetcher().fetch(
                    base + "/cat.png", param=PARAM, allowed_types=("image/",), max_bytes=4
                )

    asyncio.run(scenario())


def test_redirects() -> None:
    async def scenario() -> None:
        port: list[int] = []

        def to(
            location: Callable[[], str],
        ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
            async def handler(_: web.Request) -> web.StreamResponse:
                raise web.HTTPFound(location())

            return handler

        routes = {
            "/cat.png": png,
            "/hop": to(lambda: "/cat.png"),
            "/to-private": to(lambda: "http://10.0.0.1/cat.png"),
            "/to-metadata": to(lambda: "http://169.254.169.254/latest/meta-data/"),
            "/to-v6-loopback": to(lambda: f"http://[::1]:{port[0]}/cat.png"),
            "/to-file": to(lambda: "file:///etc/passwd"),
            "/loop": to(lambda: "/loop"),
        }
        async with server(routes) as base:
            port.append(int(base.rsplit(":", 1)[1]))
            # Only 127.0.0.1 is allowed: redirects anywhere else are refused on the hop.
            narrow = FetchLimits(allow_networks=(ipaddress.ip_network("127.0.0.1/32"),))
            got = await fetcher(narrow).fetch(base + "/hop", param=PARAM, allowed_types=("image/",))
            assert got.data == PNG and got.url == base + "/cat.png"
            assert (
                "10.0.0.1 is a private address"
                in (await refused(base + "/to-private", narrow)).message
            )
            assert "link-local" in (await refused(base + "/to-metadata", narrow)).message
            assert (
                "::1 is a loopback address"
                in (await refused(base + "/to-v6-loopback", narrow)).message
            )
            assert "only http and https" in (await refused(base + "/to-file", narrow)).message
            assert "more than 3 times" in (await refused(base + "/loop", narrow)).message

    asyncio.run(scenario())


def test_content_types_statuses_and_encodings() -> None:
    async def scenario() -> None:
        async def html(_: web.Request) -> web.StreamResponse:
            return web.Response(text="<html></html>", content_type="text/html")

        async def untyped(_: web.Request) -> web.StreamResponse:
            resp = web.Response(body=PNG)
            resp.headers["Content-Type"] = ""
            return resp

        async def gzipped(_: web.Request) -> web.StreamResponse:
            return web.Response(
                body=PNG, headers={"Content-Type": "image/png", "Content-Encoding": "gzip"}
            )

        async def missing(_: web.Request) -> web.StreamResponse:
            raise web.HTTPNotFound()

        routes = {
            "/page": html,
            "/untyped": untyped,
            "/gz": gzipped,
            "/missing": missing,
            "/cat.png": png,
        }
        async with server(routes) as base:
            assert "text/html, not image/*" in (await refused(base + "/page", OPEN)).message
            assert "missing" in (await refused(base + "/untyped", OPEN)).message
            assert "gzip" in (await refused(base + "/gz", OPEN)).message
            assert "HTTP 404" in (await refused(base + "/missing", OPEN)).message
            pdf_only = ("application/pdf",)
            assert (
                "image/png, not application/pdf"
                in (await refused(base + "/cat.png", OPEN, pdf_only)).message
            )

    asyncio.run(scenario())


def test_time_limits() -> None:
    async def scenario() -> None:
        async def slow(_: web.Request) -> web.StreamResponse:
            await asyncio.sleep(5)
            return web.Response(body=PNG, content_type="image/png")

        async with server({"/slow": slow}) as base:
            quick = FetchLimits(allow_private_networks=True, timeout=0.2)
            assert "did not answer within 0.2 s" in (await refused(base + "/slow", quick)).message
            # When the request's own deadline is what runs out, it is a timeout, not a 400.
            deadline = asyncio.get_running_loop().time() + 0.2
            with pytest.raises(ProviderError) as caught:
                await fetcher().fetch(
                    base + "/slow", param=PARAM, allowed_types=("image/",), deadline=deadline
                )
            assert caught.value.kind is FailureKind.TIMEOUT

    asyncio.run(scenario())


def test_unreachable_loopback_port_is_a_400() -> None:
    async def scenario() -> None:
        async with server({}) as base:
            pass  # the port is closed again: nothing listens there now
        err = await refused(base + "/cat.png", OPEN)
        assert err.message.endswith("it cannot be fetched: the connection was refused.")
        assert "Error" not in err.message  # no exception class: that is the detail's
        assert err.detail is not None and "ClientConnectorError" in err.detail

    asyncio.run(scenario())


def test_bad_url() -> None:
    assert "not a valid URL" in asyncio.run(refused("http://[::1")).message
