"""Anthropic's `cache_control` on a content part, system block or tool, read from JSON.

Both the chat and the Messages doors take it, in the same place Anthropic puts it; the
service checks its values (`ephemeral`, a ttl of 5m or 1h).
"""

from __future__ import annotations

from switchyard.v1 import common_pb2

from gateway_http.transcode.fields import JSON, obj, opt_str, req_str


def read_cache_control(holder: JSON, param: str, out: common_pb2.CacheControl) -> None:
    raw = holder.get("cache_control")
    if raw is None:
        return
    control = obj(raw, f"{param}.cache_control")
    out.type = req_str(control, "type", f"{param}.cache_control.type")
    out.ttl = opt_str(control, "ttl", f"{param}.cache_control.ttl") or ""
