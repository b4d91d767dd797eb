"""Composition of the core: config -> providers -> engine -> servicers -> gRPC server.

`Service.register` adds every servicer to anything with the gRPC server's registration
interface: a real grpc.aio server, or the in-process channel.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from switchyard.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    chat_pb2,
    chat_pb2_grpc,
    embeddings_pb2,
    embeddings_pb2_grpc,
    messages_pb2,
    messages_pb2_grpc,
    models_pb2,
    models_pb2_grpc,
    rerank_pb2,
    rerank_pb2_grpc,
    responses_pb2,
    responses_pb2_grpc,
    usage_pb2,
    usage_pb2_grpc,
)

from service import errors
from service.accounting.backends import Backends, KeyStoreBackend, UsageBackend, open_backends
from service.accounting.gate import Accounting
from service.accounting.usage_sqlite import SqliteUsage
from service.cache import ResponseCache
from service.cache.build import backend_changed, build_cache, semantic_embedder
from service.cache.settings import CacheConfig
from service.config import Config, ConfigError, ProviderConfig, load_config
from service.engine import Engine
from service.inprocess import InProcessChannel
from service.lifecycle import Lifecycle
from service.moderation.base import Moderator
from service.moderation.openai import OpenAIModerator
from service.moderation.rules import RuleModerator
from service.pipeline import Pipeline
from service.providers.base import Provider
from service.servicers.admin import AccountServicer, AdminServicer
from service.servicers.chat import ChatServicer
from service.servicers.embeddings import EmbeddingServicer
from service.servicers.messages import MessagesServicer
from service.servicers.models import ModelServicer
from service.servicers.rerank import RerankServicer
from service.servicers.responses import ResponsesServicer
from service.servicers.usage import UsageServicer
from service.telemetry.observed import Observer

SERVICE_NAMES = tuple(
    module.DESCRIPTOR.services_by_name[name].full_name
    for module, name in (
        (chat_pb2, "ChatService"),
        (messages_pb2, "MessagesService"),
        (embeddings_pb2, "EmbeddingService"),
        (rerank_pb2, "RerankService"),
        (models_pb2, "ModelService"),
        (admin_pb2, "AdminService"),
        (admin_pb2, "AccountService"),
        (usage_pb2, "UsageService"),
        (responses_pb2, "ResponsesService"),
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
    # gRPC sets SO_REUSEPORT unless told not to: a second gateway on the same port would
    # then start and take part of the traffic. Only the workers of one gateway share a
    # port (service/ports.py).
    ("grpc.so_reuseport", 0),
)
WORKER_OPTIONS = (*SERVER_OPTIONS[:-1], ("grpc.so_reuseport", 1))


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


log = logging.getLogger("switchyard")


def build_provider(provider: ProviderConfig) -> Provider:
    module, _, attribute = ADAPTERS[provider.kind].partition(":")
    adapter = getattr(importlib.import_module(module), attribute)
    return adapter(provider)  # type: ignore[no-any-return]


def build_providers(config: Config) -> dict[str, Provider]:
    return {name: build_provider(provider) for name, provider in config.providers.items()}


def build_moderator(settings: Mapping[str, Any] | None) -> Moderator | None:
    if settings is None:
        return None
    if settings["kind"] == "rules":
        categories = settings.get("categories") or {}
        return RuleModerator({str(k): [str(p) for p in v] for k, v in categories.items()})
    return OpenAIModerator(
        base_url=str(settings["base_url"]),
        api_key=str(settings.get("api_key", "")),
        model=str(settings.get("model", "omni-moderation-latest")),
    )


@dataclass
class Service:
    config: Config
    keys: KeyStoreBackend
    engine: Engine
    pipeline: Pipeline
    accounting: Accounting
    usage: UsageBackend
    backends: Backends | None = None
    observer: Observer = field(default_factory=Observer)
    config_path: Path | None = None  # what a reload reads (None: the built-in default)
    # After a reload here, what makes the gateway's other processes reload too.
    reload_others: Callable[[], None] | None = None
    _reloading: asyncio.Lock = field(default_factory=asyncio.Lock)
    cache: ResponseCache | None = None

    @classmethod
    def build(
        cls,
        config: Config,
        data_dir: Path,
        *,
        workers: int = 1,
        observer: Observer | None = None,
        config_path: Path | None = None,
    ) -> Service:
        """The core over the stores the config's `storage:` picks (`workers`: how many
        processes of this gateway share them on this machine), observed by `observer`;
        `config_path` is what a reload reads."""
        stores = open_backends(config.storage, data_dir / "switchyard.db", workers=workers)
        providers = build_providers(config)
        engine = Engine(config, providers)
        accounting = Accounting(
            config.models,
            stores.ledger,
            build_moderator(config.moderation),
            credits=stores.credits,
            limiter=stores.limiter,
            admission=stores.admission,
        )
        # The console's reads: from the database that holds the ledger (PostgreSQL's, or
        # the SQLite the ledger made, which opens first).
        usage = stores.usage or SqliteUsage(data_dir / "switchyard.db")
        keys = stores.keys
        cache = build_cache(config.cache, providers)
        return cls(
            config,
            keys,
            engine,
            Pipeline(keys),
            accounting,
            usage,
            stores,
            observer or Observer(),
            config_path,
            cache=cache,
        )

    async def start(self) -> None:
        """Connect what needs the event loop (a shared backend's connections)."""
        if self.backends is not None:
            await self.backends.start()

    async def reload(self, *, others: bool = True) -> tuple[int, int, list[str]]:
        """Reload providers, models and routing from the config file, atomically for new
        calls; calls in flight finish on what they started with. Providers whose settings
        did not change are kept as they are (their connections, their loaded models).
        A file that does not load raises INVALID_REQUEST naming the line, and nothing
        changes. Returns (providers, models, the providers built anew)."""
        if self.config_path is None:
            raise errors.invalid_request(
                "This gateway runs the built-in default config: there is no file to reload "
                "(start it with --config)."
            )
        async with self._reloading:
            try:
                config = await asyncio.to_thread(load_config, self.config_path)
            except ConfigError as exc:
                raise errors.invalid_request(f"The config was not reloaded: {exc}") from None
            current = self.engine.providers
            providers: dict[str, Provider] = {}
            rebuilt: list[str] = []
            for name, settings in config.providers.items():
                if self.config.providers.get(name) == settings and name in current:
                    providers[name] = current[name]
                else:
                    providers[name] = build_provider(settings)
                    rebuilt.append(name)
            for section in ("moderation", "telemetry", "storage"):
                if getattr(config, section) != getattr(self.config, section):
                    log.warning("reload: the %s settings changed; they apply at restart", section)
            self._reload_cache(config.cache, providers)
            self.engine.swap(config, providers)
            self.accounting.set_models(config.models)
            self.config = config
            log.info(
                "reloaded %s: %d providers (%s rebuilt), %d models",
                self.config_path,
                len(providers),
                ", ".join(rebuilt) or "none",
                len(config.models),
            )
            await self.engine.warm(rebuilt)
        if others and self.reload_others is not None:
            self.reload_others()
        return len(providers), len(config.models), rebuilt

    def _reload_cache(self, new: CacheConfig, providers: Mapping[str, Provider]) -> None:
        """Models' cache settings apply at once; a new backend (or a cache where none
        ran) takes a restart, as the servicers hold the one they started with."""
        old = self.config.cache
        if new == old:
            return
        if self.cache is None:
            log.warning("reload: caching was off at start; turning it on applies at restart")
            return
        if backend_changed(old, new):
            log.warning("reload: the cache backend settings changed; they apply at restart")
        self.cache.reconfigure(new, semantic_embedder(new, providers))

    def register(self, server: Any) -> None:
        """Every servicer, each method observed (metrics, access log, traces) when on."""
        core = (self.pipeline, self.engine, self.accounting)
        chat = ChatServicer(*core, self.cache)
        keys = (self.pipeline, self.keys, self.accounting)
        wrap = self.observer.wrap
        for add, servicer, module, name in (
            (chat_pb2_grpc.add_ChatServiceServicer_to_server, chat, chat_pb2, ""),
            (
                messages_pb2_grpc.add_MessagesServiceServicer_to_server,
                # It runs the chat servicer itself (not through the wrapper): the
                # Messages call is observed once, as MessagesService.*.
                MessagesServicer(self.pipeline, chat, self.accounting, self.engine),
                messages_pb2,
                "",
            ),
            (
                embeddings_pb2_grpc.add_EmbeddingServiceServicer_to_server,
                EmbeddingServicer(*core),
                embeddings_pb2,
                "",
            ),
            (
                rerank_pb2_grpc.add_RerankServiceServicer_to_server,
                RerankServicer(*core),
                rerank_pb2,
                "",
            ),
            (
                responses_pb2_grpc.add_ResponsesServiceServicer_to_server,
                ResponsesServicer(*core, self.cache),
                responses_pb2,
                "",
            ),
            (
                models_pb2_grpc.add_ModelServiceServicer_to_server,
                ModelServicer(self.pipeline, self.engine),
                models_pb2,
                "",
            ),
            (
                admin_pb2_grpc.add_AdminServiceServicer_to_server,
                AdminServicer(*keys, reload=self.reload, cache=self.cache),
                admin_pb2,
                "AdminService",
            ),
            (
                admin_pb2_grpc.add_AccountServiceServicer_to_server,
                AccountServicer(*keys),
                admin_pb2,
                "AccountService",
            ),
            (
                usage_pb2_grpc.add_UsageServiceServicer_to_server,
                UsageServicer(self.pipeline, self.engine, self.usage),
                usage_pb2,
                "",
            ),
        ):
            services = module.DESCRIPTOR.services_by_name
            descriptor = services[name] if name else next(iter(services.values()))
            add(wrap(servicer, descriptor), server)

    def in_process_channel(self) -> InProcessChannel:
        channel = InProcessChannel()
        self.register(channel)
        return channel

    async def grpc_server(
        self,
        address: str,
        *more: str,
        shared: bool = False,
        lifecycle: Lifecycle | None = None,
    ) -> grpc.aio.Server:
        """A grpc.aio server with our services, health and reflection, bound to `address`
        (and to any `more` addresses); `shared` lets this gateway's other workers bind
        the same port. Health follows `lifecycle` (without one: SERVING at once).
        Raises OSError when an address cannot be bound."""
        server = grpc.aio.server(options=WORKER_OPTIONS if shared else SERVER_OPTIONS)
        self.register(server)
        health_servicer = health.aio.HealthServicer()  # type: ignore[attr-defined]
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        if lifecycle is not None:
            await lifecycle.attach(health_servicer, SERVICE_NAMES)
        else:
            for name in (*SERVICE_NAMES, ""):
                await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
        reflection.enable_server_reflection(
            (*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME), server
        )
        for where in (address, *more):
            try:
                bound = server.add_insecure_port(where)
            except RuntimeError:  # what recent grpcio raises instead of returning 0
                bound = 0
            if bound == 0:
                raise OSError(f"cannot bind the gRPC server to {where}")
        return server

    async def warm(self) -> None:
        """Load what the providers load lazily (the built-in local models), so that the
        first request does not wait for it; a model that fails to load is logged and
        left to fail its requests as before."""
        await self.engine.warm()

    @property
    def in_flight(self) -> int:
        """Generations in flight, whichever surface they came in by."""
        return self.accounting.in_flight

    async def aclose(self) -> None:
        await self.engine.aclose()
        await self.accounting.aclose()  # drains the ledger
        if self.backends is not None:
            await self.backends.aclose()
        if self.cache is not None:
            await self.cache.aclose()
        self.keys.close()
