"""`switchyard.v1.ModelService`: the catalog as clients see it (OpenAI + OpenRouter fields)."""

from __future__ import annotations

from switchyard.v1 import models_pb2, models_pb2_grpc

from service import errors
from service.catalog import REASONING_PARAMETERS, EndpointConfig, ModelConfig
from service.engine import Engine
from service.pipeline import Pipeline
from service.servicers.base import Context, abort, begin


def _usd(value: float) -> str:
    """A price as OpenRouter writes it: plain decimal text, no exponent."""
    text = f"{value:.12f}".rstrip("0").rstrip(".")
    return text or "0"


def _cheapest(model: ModelConfig) -> EndpointConfig:
    return min(model.endpoints, key=lambda e: e.pricing.prompt + e.pricing.completion)


def supported_parameters(model: ModelConfig) -> set[str]:
    """Parameters at least one endpoint declares (`reasoning: true` declares reasoning)."""
    params = {p for e in model.endpoints for p in (e.supported() or ())}
    if any(e.reasoning for e in model.endpoints):
        params |= REASONING_PARAMETERS
    return params


def model_to_proto(model: ModelConfig) -> models_pb2.Model:
    cheapest = _cheapest(model)
    inputs = {m for e in model.endpoints for m in (e.input_modalities or {"text"})}
    outputs = {m for e in model.endpoints for m in e.output_modalities}
    if "chat" not in model.capabilities:
        outputs = {"embeddings"}
    contexts = [e.context_length for e in model.endpoints if e.context_length is not None]
    context = model.context_length or (max(contexts) if contexts else None)
    out = models_pb2.Model(
        id=model.id,
        owned_by=model.owned_by,
        created=model.created,
        name=model.name,
        capabilities=sorted(model.capabilities),
        pricing=models_pb2.Pricing(
            prompt=_usd(cheapest.pricing.prompt),
            completion=_usd(cheapest.pricing.completion),
            request=_usd(cheapest.pricing.request),
            image=_usd(cheapest.pricing.image),
        ),
        input_modalities=sorted(inputs),
        output_modalities=sorted(outputs),
        supported_parameters=sorted(supported_parameters(model)),
        providers=sorted({e.provider for e in model.endpoints}),
    )
    for cache in ("input_cache_read", "input_cache_write"):
        price = getattr(cheapest.pricing, cache)
        if price is not None:
            setattr(out.pricing, cache, _usd(price))
    if context is not None:
        out.context_length = context
        out.top_provider.context_length = context
    top = max(model.endpoints, key=lambda e: e.max_output_tokens or 0)
    if top.max_output_tokens is not None:
        out.top_provider.max_completion_tokens = top.max_output_tokens
    out.top_provider.is_moderated = False
    return out


class ModelServicer(models_pb2_grpc.ModelServiceServicer):
    def __init__(self, pipeline: Pipeline, engine: Engine) -> None:
        self._pipeline = pipeline
        self._engine = engine

    async def List(  # noqa: N802 - gRPC method name
        self, request: models_pb2.ListModelsRequest, context: Context
    ) -> models_pb2.ListModelsResponse:
        try:
            begin(self._pipeline, context)
            wanted = set(request.supported_parameters)
            return models_pb2.ListModelsResponse(
                models=[
                    model_to_proto(m)
                    for m in self._engine.models
                    if wanted <= supported_parameters(m)
                ]
            )
        except Exception as exc:  # noqa: BLE001 - every failure ends as a status
            await abort(context, exc, "ModelService.List")

    async def Get(  # noqa: N802 - gRPC method name
        self, request: models_pb2.GetModelRequest, context: Context
    ) -> models_pb2.Model:
        try:
            begin(self._pipeline, context)
            for model in self._engine.models:
                if model.id == request.id:
                    return model_to_proto(model)
            raise errors.model_not_found(request.id)
        except Exception as exc:  # noqa: BLE001 - every failure ends as a status
            await abort(context, exc, "ModelService.Get")
