"""ASGI endpoints, one module per API area."""
