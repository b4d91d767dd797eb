"""Serving the console's files: GET /ui and /ui/<file>, with the security headers."""

from __future__ import annotations

from importlib import resources

from starlette.types import Receive, Scope, Send

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
TYPES = {
    ".html": b"text/html; charset=utf-8",
    ".js": b"text/javascript; charset=utf-8",
    ".css": b"text/css; charset=utf-8",
    ".svg": b"image/svg+xml",
}
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    # The files change with the package: a browser revalidates rather than run stale code.
    (b"cache-control", b"no-cache"),
]


def _files() -> dict[str, tuple[bytes, bytes]]:
    """Every shipped file by its path under /ui/, read once: nothing outside the
    package can be named, whatever the URL says."""
    found: dict[str, tuple[bytes, bytes]] = {}
    root = resources.files(__package__ or "gateway_http.console") / "static"

    def walk(folder: resources.abc.Traversable, prefix: str) -> None:
        for entry in folder.iterdir():
            if entry.is_dir():
                walk(entry, f"{prefix}{entry.name}/")
                continue
            suffix = "." + entry.name.rpartition(".")[2]
            if suffix in TYPES:
                found[prefix + entry.name] = (entry.read_bytes(), TYPES[suffix])

    walk(root, "")
    return found


class Console:
    """An ASGI app for /ui and everything under it."""

    def __init__(self) -> None:
        self._files = _files()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        if path == "/ui":
            await self._send(send, 308, b"", [(b"location", b"/ui/")])
            return
        name = path.removeprefix("/ui/") or "index.html"
        found = self._files.get(name)
        if found is None:
            await self._send(send, 404, b"Not found.", [(b"content-type", b"text/plain")])
            return
        body, content_type = found
        head = scope["method"] == "HEAD"
        await self._send(send, 200, b"" if head else body, [(b"content-type", content_type)],
                         length=len(body))  # fmt: skip

    @staticmethod
    async def _send(
        send: Send,
        status: int,
        body: bytes,
        headers: list[tuple[bytes, bytes]],
        length: int | None = None,
    ) -> None:
        size = str(len(body) if length is None else length).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [*headers, *HEADERS, (b"content-length", size)],
            }
        )
        await send({"type": "http.response.body", "body": body})
