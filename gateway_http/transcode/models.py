"""Models: OpenAI's list/retrieve objects, plus OpenRouter's catalog fields."""

from __future__ import annotations

from switchyard.v1 import models_pb2

from gateway_http.transcode.fields import JSON


def model_json(model: models_pb2.Model) -> JSON:
    inputs, outputs = list(model.input_modalities), list(model.output_modalities)
    out: JSON = {
        "id": model.id,
        "object": "model",
        "created": model.created,
        "owned_by": model.owned_by,
        "name": model.name,
        "capabilities": list(model.capabilities),
        "pricing": {
            "prompt": model.pricing.prompt,
            "completion": model.pricing.completion,
            "request": model.pricing.request,
            "image": model.pricing.image,
        },
        "architecture": {
            "modality": "+".join(inputs) + "->" + "+".join(outputs),
            "input_modalities": inputs,
            "output_modalities": outputs,
        },
        "supported_parameters": list(model.supported_parameters),
        "top_provider": {
            "context_length": model.top_provider.context_length
            if model.top_provider.HasField("context_length")
            else None,
            "max_completion_tokens": model.top_provider.max_completion_tokens
            if model.top_provider.HasField("max_completion_tokens")
            else None,
            "is_moderated": model.top_provider.is_moderated,
        },
        "providers": list(model.providers),
    }
    for cache in ("input_cache_read", "input_cache_write"):
        if model.pricing.HasField(cache):
            out["pricing"][cache] = getattr(model.pricing, cache)
    if model.HasField("context_length"):
        out["context_length"] = model.context_length
    return out


def models_json(response: models_pb2.ListModelsResponse) -> JSON:
    return {"object": "list", "data": [model_json(m) for m in response.models]}
