"""Models: the OpenAI list/retrieve objects, plus the catalog fields we know."""

from __future__ import annotations

from switchyard.v1 import models_pb2

from gateway_http.transcode.fields import JSON


def model_json(model: models_pb2.Model) -> JSON:
    out: JSON = {
        "id": model.id,
        "object": "model",
        "created": model.created,
        "owned_by": model.owned_by,
        "name": model.name,
        "capabilities": list(model.capabilities),
    }
    if model.HasField("context_length"):
        out["context_length"] = model.context_length
    return out


def models_json(response: models_pb2.ListModelsResponse) -> JSON:
    return {"object": "list", "data": [model_json(m) for m in response.models]}
