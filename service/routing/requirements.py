"""What a request needs from an endpoint, derived from the request itself.

Two levels, as OpenRouter routes: *hard* requirements always filter endpoints (tools,
structured outputs, input modalities, `dimensions`): an endpoint that cannot do them
cannot serve the request at all. Every other parameter is soft by default, as on
OpenRouter: an endpoint whose declared `supported_parameters` lack it still serves the
request, with the parameter dropped (`without`), and the response says which were
dropped. With `require_parameters: true` they filter too.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

import orjson

from service.catalog import REASONING_PARAMETERS, EndpointConfig
from service.domain.chat import SAMPLING_PARAMETERS, AudioPart, ChatRequest, FilePart, ImagePart
from service.domain.embeddings import EmbedRequest

_MODALITY_OF = {ImagePart: "image", AudioPart: "audio", FilePart: "file"}


@dataclass(frozen=True, slots=True)
class Requirements:
    hard_parameters: frozenset[str] = frozenset()
    parameters: frozenset[str] = frozenset()  # all the request sets, hard ones included
    modalities: frozenset[str] = frozenset()  # input modalities beyond text

    def unmet(self, endpoint: EndpointConfig, require_parameters: bool) -> str | None:
        """What `endpoint` lacks for this request, in words; None if it can serve it."""
        declared = endpoint.input_modalities
        if declared is not None:
            for modality in sorted(self.modalities - declared):
                return f"{modality} input"
        wanted = self.parameters if require_parameters else self.hard_parameters
        for name in sorted(_lacking(endpoint, wanted)):
            return f"the '{name}' parameter"
        return None

    def dropped(self, endpoint: EndpointConfig) -> frozenset[str]:
        """The soft parameters `endpoint` does not declare: sent to it, they are dropped."""
        if not self.parameters:
            return frozenset()
        return _lacking(endpoint, self.parameters - self.hard_parameters)


def _lacking(endpoint: EndpointConfig, names: frozenset[str]) -> frozenset[str]:
    """Those of `names` the endpoint declares it lacks: not among its supported
    parameters (when it declares them), or reasoning where it says `reasoning: false`."""
    lacking = names & REASONING_PARAMETERS if endpoint.reasoning is False else frozenset()
    supported = endpoint.supported()
    return lacking if supported is None else lacking | (names - supported)


def _modalities(request: ChatRequest) -> Iterator[str]:
    for message in request.messages:
        if isinstance(message.content, tuple):
            for part in message.content:
                modality = _MODALITY_OF.get(type(part))
                if modality is not None:
                    yield modality


def for_chat(request: ChatRequest) -> Requirements:
    hard = set()
    if request.tools:
        hard.add("tools")
        if request.tool_choice is not None:
            hard.add("tool_choice")
    fmt = request.response_format
    if fmt is not None and fmt.type == "json_schema":
        hard.add("structured_outputs")
    elif fmt is not None and fmt.type == "json_object":
        hard.add("response_format")
    params = set(hard)
    params.update(name for name in SAMPLING_PARAMETERS if getattr(request, name) is not None)
    if request.stop:
        params.add("stop")
    if request.logit_bias:
        params.add("logit_bias")
    if request.reasoning is not None:
        params.add("reasoning")
    if request.extra_json:
        params.update(orjson.loads(request.extra_json))
    return Requirements(frozenset(hard), frozenset(params), frozenset(_modalities(request)))


def without(request: ChatRequest, names: frozenset[str]) -> ChatRequest:
    """`request` with the soft parameters `names` unset (the keys of `extra_json` too)."""
    changes: dict[str, object] = {n: None for n in names if n in SAMPLING_PARAMETERS}
    if "stop" in names:
        changes["stop"] = ()
    if "logit_bias" in names:
        changes["logit_bias"] = {}
    if "reasoning" in names:
        changes["reasoning"] = None
    if request.extra_json:
        extra = orjson.loads(request.extra_json)
        if names & extra.keys():
            kept = {k: v for k, v in extra.items() if k not in names}
            changes["extra_json"] = orjson.dumps(kept).decode() if kept else None
    return replace(request, **changes)  # type: ignore[arg-type]


def for_embeddings(request: EmbedRequest) -> Requirements:
    hard = frozenset({"dimensions"}) if request.dimensions is not None else frozenset()
    return Requirements(hard, hard)


NONE = Requirements()
