"""The HTTP face of Switchyard: OpenAI-compatible REST and SSE over the gRPC service.

This package depends only on the generated protos; it is handed a channel (a real
grpc.aio channel or the service's in-process one) and never imports `service`.
"""

from gateway_http.app import create_app

__all__ = ["create_app"]
