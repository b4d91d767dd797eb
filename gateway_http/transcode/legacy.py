"""OpenAI's deprecated function calling, read as the tools that replaced it.

OpenAI's spec still carries the fields from before tools: a request's `functions` and
`function_call`, an assistant message's `function_call`, and `function` messages (a
function's result, named but without an id). Old clients still send them, and OpenAI
still takes them. They are mapped onto tools here, so that the service and every
adapter see one shape: an assistant's `function_call` becomes a tool call with an id of
our making (`call_<message index>`, safe for every provider's id rules), and a
`function` message answers the latest unanswered call of that name.
"""

from __future__ import annotations

from typing import Any

from switchyard.v1 import chat_pb2

from gateway_http.errors import bad_request
from gateway_http.transcode.fields import JSON, array, obj, opt_str, req_str

# name -> the id given to the latest legacy call of that name not answered yet
Pending = dict[str, str]


def functions(raw: Any) -> list[JSON]:
    """A request's `functions`, as the `tools` they stand for."""
    return [
        {"type": "function", "function": obj(f, f"functions[{i}]")}
        for i, f in enumerate(array(raw, "functions"))
    ]


def function_call(raw: Any, out: chat_pb2.ToolChoice) -> None:
    """A request's `function_call`: "none", "auto", or {"name": ...}, as a tool choice."""
    if isinstance(raw, str):
        if raw not in ("none", "auto"):
            raise bad_request(
                "'function_call' must be 'none', 'auto' or an object.", "function_call"
            )
        out.mode = raw
        return
    out.function_name = req_str(obj(raw, "function_call"), "name", "function_call.name")


def assistant_call(raw: Any, i: int, out: chat_pb2.Message, pending: Pending) -> None:
    """An assistant message's `function_call`, as its one tool call."""
    where = f"messages[{i}].function_call"
    call = obj(raw, where)
    name = req_str(call, "name", f"{where}.name")
    call_id = f"call_{i}"
    out.tool_calls.add(
        id=call_id,
        type="function",
        function=chat_pb2.FunctionCall(
            name=name, arguments=opt_str(call, "arguments", f"{where}.arguments") or ""
        ),
    )
    pending[name] = call_id


def function_result(i: int, out: chat_pb2.Message, pending: Pending) -> None:
    """A `function` message, as the tool message answering that function's call."""
    if not out.name:
        raise bad_request(
            f"'messages[{i}].name' is required for function messages.", f"messages[{i}].name"
        )
    call_id = pending.pop(out.name, None)
    if call_id is None:
        raise bad_request(
            f"'messages[{i}]' is the result of function '{out.name}', but no earlier assistant "
            "message calls it (function_call).",
            f"messages[{i}]",
        )
    out.role = "tool"
    out.tool_call_id = call_id
    out.name = ""
