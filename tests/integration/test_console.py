"""The console's files: served at /ui by the gateway itself, from the package, with a
Content-Security-Policy that allows no inline script, and nothing from another origin."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.fixtures.gateway import Gateway
from tests.fixtures.http import request

STATIC = Path(__file__).resolve().parents[2] / "gateway_http" / "console" / "static"


def test_ui_redirects_to_the_index_with_the_security_headers(service: Gateway) -> None:
    moved = request("GET", service.http_url + "/ui")
    assert moved.status == 308 and moved.headers["location"] == "/ui/"
    index = request("GET", service.http_url + "/ui/")
    assert index.status == 200
    assert index.headers["content-type"].startswith("text/html")
    csp = index.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["script-src"] == "'self'"  # no 'unsafe-inline', no 'unsafe-eval'
    assert directives["default-src"] == "'none'" and directives["connect-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert index.headers["x-content-type-options"] == "nosniff"
    assert b'<script type="module" src="js/main.js">' in index.body


@pytest.mark.parametrize(
    "path", sorted(p.relative_to(STATIC).as_posix() for p in STATIC.rglob("*.*"))
)
def test_every_shipped_file_is_served_as_its_type(service: Gateway, path: str) -> None:
    answer = request("GET", f"{service.http_url}/ui/{path}")
    assert answer.status == 200, path
    assert answer.body == (STATIC / path).read_bytes()
    expected = {"html": "text/html", "js": "text/javascript", "css": "text/css"}
    assert answer.headers["content-type"].startswith(expected[path.rpartition(".")[2]])
    assert "content-security-policy" in answer.headers


def test_the_pages_have_no_inline_script_and_load_nothing_from_elsewhere() -> None:
    for file in STATIC.rglob("*.*"):
        text = file.read_text()
        if file.suffix == ".html":
            assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text), file  # inline script
            assert not re.search(r"\son[a-z]+=", text), file  # inline handlers
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text), file  # no CDN
        if file.suffix == ".js":
            assert "innerHTML" not in text and "eval(" not in text, file


@pytest.mark.parametrize("path", ["/ui/nope.js", "/ui/../pyproject.toml", "/ui/js/../../app.py"])
def test_nothing_else_is_served(service: Gateway, path: str) -> None:
    assert request("GET", service.http_url + path).status == 404
