"""Log lines that say which request they belong to.

The pipeline sets the request id in a context variable when a call begins (pipeline.py);
every log record made while that call runs, in any module, carries it as `request_id`,
so that an error logged deep in a provider adapter can be matched to the client's
`x-request-id` without threading the id through every signature. asyncio copies the
context into each task, so concurrent requests never see each other's id.
"""

from __future__ import annotations

import logging
import os
import sys
from contextvars import ContextVar

REQUEST_ID: ContextVar[str] = ContextVar("switchyard_request_id", default="-")
FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"


class RequestIdFilter(logging.Filter):
    """Stamps each record with the id of the request being served (or "-")."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


def configure() -> None:
    """Log to stderr at SWITCHYARD_LOG_LEVEL (default INFO), every line with its request id."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(logging.Formatter(FORMAT))
    logging.basicConfig(
        level=os.environ.get("SWITCHYARD_LOG_LEVEL", "INFO").upper(), handlers=[handler]
    )
