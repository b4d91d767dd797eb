"""Composition of the core: config -> providers -> engine -> servicers -> gRPC server.

`Service.register` adds every servicer to anything with the gRPC server's registration
interface: a real grpc.aio server, or the in-process channel.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from switchyard.v1 import (
    chat_pb2,
    chat_pb2_grpc,
    embeddings_pb2,
    embeddings_pb2_grpc,
    models_pb2,
    models_pb2_grpc,
    rerank_pb2,
    rerank_pb2_grpc,
)

from service.config import Config
from service.engine import Engine
from service.inprocess import InProcessChannel
from service.pipeline import Pipeline
from service.providers.base import Provider
from service.servicers.chat import ChatServicer
from service.servicers.embeddings import EmbeddingServicer
from service.servicers.models import ModelServicer
from service.servicers.rerank import RerankServicer
from service.store.keys import KeyStore

SERVICE_NAMES = tuple(
    module.DESCRIPTOR.services_by_name[name].full_name
    for module, name in (
        (chat_pb2, "ChatService"),
        (embeddings_pb2, "EmbeddingService"),
        (rerank_pb2, "RerankService"),
        (models_pb2, "ModelService"),
    )
)

# Keep-alives and message limits suited to long streams and large embedding batches.
SERVER_OPTIONS = (
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.so_reuseport", 1),
)


# Provider kind -> the adapter class, imported only when a config uses that kind.
ADAPTERS: dict[str, str] = {
    "openai": "service.providers.openai_compat:OpenAICompatProvider",
    "local": "service.providers.local:LocalProvider",
    "anthropic": "service.providers.anthropic:AnthropicProvider",
    "gemini": "service.providers.gemini:GeminiProvider",
    "cohere": "service.providers.cohere:CohereProvider",
    "tei": "service.providers.tei:TEIProvider",
    "jina": "service.providers.jina:JinaProvider",
}


def build_providers(config: Config) -> dict[str, Provider]:
    providers: dict[str, Provider] = {}
    for name, provider in config.providers.items():
        module, _, attribute = ADAPTERS[provider.kind].partition(":")
        adapter = getattr(importlib.import_module(module), attribute)
        providers[name] = adapter(provider)
    return providers


@dataclass
class Service:
    config: Config
    keys: KeyStore
    engine: Engine
    pipeline: Pipeline

    @classmethod
    def build(cls, config: Config, data_dir: Path) -> Service:
        keys = KeyStore(data_dir / "switchyard.db")
        engine = Engine(config, build_providers(config))
        return cls(config=config, keys=keys, engine=engine, pipeline=Pipeline(keys))

    def register(self, server: Any) -> None:
        chat_pb2_grpc.add_ChatServiceServicer_to_server(
            ChatServicer(self.pipeline, self.engine), server
        )
        embeddings_pb2_grpc.add_EmbeddingServiceServicer_to_server(
            EmbeddingServicer(self.pipeline, self.engine), server
        )
        rerank_pb2_grpc.add_RerankServiceServicer_to_server(
            RerankServicer(self.pipeline, self.engine), server
        )
        models_pb2_grpc.add_ModelServiceServicer_to_server(
            ModelServicer(self.pipeline, self.engine), server
        )

    def in_process_channel(self) -> InProcessChannel:
        channel = InProcessChannel()
        self.register(channel)
        return channel

    async def grpc_server(self, address: str, *more: str) -> grpc.aio.Server:
        """A grpc.aio server with our services, health and reflection, bound to `address`
        (and to any `more` addresses)."""
        server = grpc.aio.server(options=SERVER_OPTIONS)
        self.register(server)
        health_servicer = health.aio.HealthServicer()  # type: ignore[attr-defined]
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        for name in (*SERVICE_NAMES, ""):
            await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
        reflection.enable_server_reflection(
            (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server
        )
        for where in (address, *more):
            if server.add_insecure_port(where) == 0:
                raise OSError(f"cannot bind the gRPC server to {where}")
        return server

    async def aclose(self) -> None:
        await self.engine.aclose()
        self.keys.close()
