"""The web console at /ui: static files shipped in this package, served from memory.

No build step and nothing fetched at run time: the pages are plain ES modules
(static/*.js) that the browser loads as they are, and they read the same HTTP API any
client uses (/v1/usage, /v1/generations, /v1/endpoints, /v1/keys, /v1/chat/completions).

The signed-in key lives in the tab's sessionStorage and goes out as an `Authorization`
header on each API call. It is never a cookie, so the browser never attaches it to a
request another site makes (no CSRF); it is gone when the tab closes, and no other tab
or origin can read it. What could read it is script running in the page, hence the
Content-Security-Policy below: scripts from this origin only, no inline script, no
eval, no plug-ins, no framing; and the pages put data into the DOM as text, never as
markup.
"""

from __future__ import annotations

from gateway_http.console.app import Console

__all__ = ["Console"]
