"""Chat completion requests, results and stream deltas."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from service.domain.routing import DEFAULT_ROUTING, Routing


@dataclass(frozen=True, slots=True)
class CacheControl:
    """A prompt-cache breakpoint (Anthropic's `cache_control`): the prompt up to and
    including what carries it may be cached. Upstreams that cache on their own (OpenAI,
    Gemini) do not need it; adapters that cannot express it leave it out."""

    type: str = "ephemeral"
    ttl: str | None = None  # "5m" or "1h"; None: the upstream's default


@dataclass(frozen=True, slots=True)
class TextPart:
    text: str
    cache_control: CacheControl | None = None


@dataclass(frozen=True, slots=True)
class ImagePart:
    url: str
    detail: str | None = None
    cache_control: CacheControl | None = None


@dataclass(frozen=True, slots=True)
class AudioPart:
    data: str
    format: str


@dataclass(frozen=True, slots=True)
class FilePart:
    file_id: str | None = None
    filename: str | None = None
    file_data: str | None = None


@dataclass(frozen=True, slots=True)
class RefusalPart:
    refusal: str


ContentPart = TextPart | ImagePart | AudioPart | FilePart | RefusalPart
Content = str | tuple[ContentPart, ...] | None


@dataclass(frozen=True, slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text as the model produced it


@dataclass(frozen=True, slots=True)
class ReasoningDetail:
    """One piece of reasoning in OpenRouter's `reasoning_details` form.

    Providers sign their reasoning (Anthropic's thinking blocks, Gemini's thought
    signatures on function calls) and refuse a tool loop whose history lacks the
    signatures, so a detail comes back to the client whole and goes upstream again
    when the client sends it back. `id` ties a detail to the tool call it belongs to
    (Gemini's signatures) or comes right before (thinking Claude interleaves between
    its calls), which keeps the order the chat shape otherwise loses.
    """

    type: str  # reasoning.text | reasoning.encrypted | reasoning.summary
    text: str | None = None
    signature: str | None = None
    data: str | None = None
    summary: str | None = None
    id: str | None = None
    format: str | None = None  # anthropic-claude-v1 | google-gemini-v1 | ...
    index: int = 0


@dataclass(frozen=True, slots=True)
class Message:
    role: str
    content: Content = None
    name: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    refusal: str | None = None
    reasoning: str | None = None
    reasoning_details: tuple[ReasoningDetail, ...] = ()
    is_error: bool = False  # tool: the result reports the tool's failure


def tool_result(message: Message) -> Content:
    """A tool message's content for an upstream without an error flag on tool results
    (all but Anthropic): a failure says so ahead of the result, as readers do."""
    content = message.content
    if not message.is_error:
        return content
    if isinstance(content, tuple):
        return (TextPart("Error:"), *content)
    return f"Error: {content}" if content else "Error"


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    description: str | None = None
    parameters_json: str | None = None  # JSON Schema object, as JSON text
    strict: bool | None = None
    cache_control: CacheControl | None = None


@dataclass(frozen=True, slots=True)
class ToolChoice:
    mode: str  # none | auto | required | function
    function: str | None = None  # set when mode == "function"


@dataclass(frozen=True, slots=True)
class ResponseFormat:
    type: str  # text | json_object | json_schema
    name: str | None = None
    description: str | None = None
    schema_json: str | None = None
    strict: bool | None = None


EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")


@dataclass(frozen=True, slots=True)
class Reasoning:
    """OpenRouter's unified reasoning request: how much to think, whether to show it.

    `effort` and `max_tokens` (a thinking budget) are alternatives; neither with
    `enabled` means "think, at the model's default (medium) effort". `exclude` keeps
    the thinking but not its text in the answer.
    """

    effort: str | None = None
    max_tokens: int | None = None
    exclude: bool = False
    enabled: bool | None = None

    @property
    def wanted(self) -> bool:
        """Whether the request asks the model to think (not just to hide the thinking)."""
        if self.enabled is False or self.effort == "none":
            return False
        return self.enabled is True or self.effort is not None or self.max_tokens is not None


# The scalar sampling parameters of a ChatRequest, named as in OpenAI's API (None = unset).
SAMPLING_PARAMETERS = (
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "seed",
    "n",
    "presence_penalty",
    "frequency_penalty",
    "logprobs",
    "top_logprobs",
    "parallel_tool_calls",
)


@dataclass(frozen=True, slots=True)
class ChatRequest:
    model: str
    messages: tuple[Message, ...]
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None
    n: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logit_bias: Mapping[str, float] = field(default_factory=dict)
    logprobs: bool | None = None
    top_logprobs: int | None = None
    user: str | None = None
    parallel_tool_calls: bool | None = None
    tools: tuple[Tool, ...] = ()
    tool_choice: ToolChoice | None = None
    response_format: ResponseFormat | None = None
    include_usage: bool = False
    extra_json: str | None = None  # other upstream parameters, a JSON object as text
    # One upstream API's own parameters, by provider kind (a JSON object as text each):
    # only adapters of that kind read them.
    native_extra: Mapping[str, str] = field(default_factory=dict)
    routing: Routing = DEFAULT_ROUTING
    reasoning: Reasoning | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int | None = None  # read from the prompt cache; in prompt_tokens
    reasoning_tokens: int | None = None
    cache_write_tokens: int | None = None  # written to the prompt cache; in prompt_tokens


@dataclass(frozen=True, slots=True)
class TopLogprob:
    token: str
    logprob: float
    bytes: tuple[int, ...] | None = None


@dataclass(frozen=True, slots=True)
class TokenLogprob:
    token: str
    logprob: float
    bytes: tuple[int, ...] | None = None
    top_logprobs: tuple[TopLogprob, ...] = ()


@dataclass(frozen=True, slots=True)
class ChoiceLogprobs:
    content: tuple[TokenLogprob, ...] | None = None
    refusal: tuple[TokenLogprob, ...] | None = None


@dataclass(frozen=True, slots=True)
class Choice:
    index: int
    message: Message
    finish_reason: str
    logprobs: ChoiceLogprobs | None = None
    stop_sequence: str | None = None  # which stop sequence ended it, if the upstream says


@dataclass(frozen=True, slots=True)
class ChatResult:
    choices: tuple[Choice, ...]
    usage: Usage | None = None
    system_fingerprint: str | None = None


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    index: int  # position in the message's tool_calls
    id: str | None = None
    name: str | None = None
    arguments: str | None = None


@dataclass(frozen=True, slots=True)
class ChoiceDelta:
    index: int
    role: str | None = None
    content: str | None = None
    tool_calls: tuple[ToolCallDelta, ...] = ()
    refusal: str | None = None
    finish_reason: str | None = None
    logprobs: ChoiceLogprobs | None = None
    stop_sequence: str | None = None
    reasoning: str | None = None
    reasoning_details: tuple[ReasoningDetail, ...] = ()


@dataclass(frozen=True, slots=True)
class ChatDelta:
    """One upstream stream event: choice deltas, and/or the usage of the whole call."""

    choices: tuple[ChoiceDelta, ...] = ()
    usage: Usage | None = None
    system_fingerprint: str | None = None
