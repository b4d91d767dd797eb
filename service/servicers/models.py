"""`switchyard.v1.ModelService`: the catalog as clients see it."""

from __future__ import annotations

from switchyard.v1 import models_pb2, models_pb2_grpc

from service import errors
from service.config import ModelConfig
from service.engine import Engine
from service.pipeline import Pipeline
from service.servicers.base import Context, abort, begin


def model_to_proto(model: ModelConfig) -> models_pb2.Model:
    out = models_pb2.Model(
        id=model.id,
        owned_by=model.owned_by,
        created=model.created,
        name=model.name,
        capabilities=sorted(model.capabilities),
    )
    if model.context_length is not None:
        out.context_length = model.context_length
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
            return models_pb2.ListModelsResponse(
                models=[model_to_proto(m) for m in self._engine.models]
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
