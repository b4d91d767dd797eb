"""A chat stream's deltas as the Responses API's typed events.

OpenAI's stream is a sequence of output items, each opened (`output_item.added`), filled
(text, argument or reasoning-summary deltas) and closed (`.done` events ending with
`output_item.done`), between `response.created` / `response.in_progress` and one last
`response.completed` (or `.incomplete`) carrying the whole response with its usage.
Chat deltas interleave nothing: reasoning comes first, then text, then tool calls, so
one item is open at a time and a delta of another kind closes it.

Gemini sends a thought signature with the function call it signs, after any reasoning
item has closed: it then opens a reasoning item of its own, before that call, which is
where a client returning the items must put it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from switchyard.v1 import responses_pb2

from service.domain import chat
from service.engine import Served
from service.servicers.chat_proto import shown_details, usage_to_proto
from service.servicers.responses_proto import item_ids, reasoning_item, status_of

Event = responses_pb2.ResponseEvent


@dataclass
class _Item:
    kind: str  # reasoning | message | call
    index: int  # in `output`
    id: str
    text: list[str] = field(default_factory=list)  # summary, text or arguments so far
    details: dict[int, chat.ReasoningDetail] = field(default_factory=dict)
    call_id: str = ""
    name: str = ""
    tool_index: int = -1


def _merge(old: chat.ReasoningDetail | None, new: chat.ReasoningDetail) -> chat.ReasoningDetail:
    """Stream pieces of one detail (same index): texts appended, the rest set."""
    if old is None:
        return new
    text = (old.text or "") + (new.text or "") if old.text or new.text else None
    return chat.ReasoningDetail(
        type=old.type,
        text=text,
        signature=new.signature or old.signature,
        data=new.data or old.data,
        summary=new.summary or old.summary,
        id=new.id or old.id,
        format=new.format or old.format,
        index=old.index,
    )


class ResponseEvents:
    """Feed it the deltas of a committed stream; `take` the batch of events to send.

    Each step (`start`, `feed`, `finish`) also returns the events it made, which stay
    in the batch being built until it is taken.

    It keeps what billing needs as ChunkBuilder does (`usage`, `produced_chars`,
    `finish_reason`), and the finished output for the closing `response.completed`.
    """

    def __init__(
        self, served: Served, response_id: str, created: int, exclude_reasoning: bool = False
    ) -> None:
        self._served = served
        self._id = response_id
        self._created = created
        self._exclude = exclude_reasoning
        self._sequence = 0
        self._batch = responses_pb2.ResponseEventBatch()
        self._open: _Item | None = None
        self._output: list[responses_pb2.OutputItem] = []
        self._ids = item_ids(response_id)
        self.usage: chat.Usage | None = None
        self.produced_chars = 0
        self.finish_reason = ""

    def _event(self, kind: str, **fields: object) -> Event:
        """A new event, made in place in the batch being built (not copied in later)."""
        event = self._batch.events.add(type=kind, sequence_number=self._sequence, **fields)
        self._sequence += 1
        return event

    def take(self) -> responses_pb2.ResponseEventBatch:
        """The events made since the last take, as one batch (one message, one write)."""
        batch, self._batch = self._batch, responses_pb2.ResponseEventBatch()
        return batch

    def _snapshot(self, status: str) -> responses_pb2.Response:
        out = responses_pb2.Response(
            id=self._id,
            created_at=self._created,
            model=self._served.model,
            provider=self._served.provider,
            status=status,
            upstream_ms=self._served.upstream_ms,
        )
        if self._served.dropped:
            out.dropped_parameters.extend(self._served.dropped)
        return out

    def start(self) -> list[Event]:
        snapshot = self._snapshot("in_progress")
        return [
            self._event("response.created", response=snapshot),
            self._event("response.in_progress", response=snapshot),
        ]

    # --- items --------------------------------------------------------------------

    def _open_item(self, kind: str, item_id: str, **fields: object) -> list[Event]:
        item = _Item(kind, len(self._output), item_id, **fields)  # type: ignore[arg-type]
        self._open = item
        self._output.append(responses_pb2.OutputItem())  # filled when it closes
        added = self._item_proto(item, "in_progress")
        events = [self._event("response.output_item.added", output_index=item.index, item=added)]
        if kind == "message":
            events.append(self._part("response.content_part.added", item, ""))
        return events

    def _part(self, kind: str, item: _Item, text: str) -> Event:
        return self._event(
            kind, item_id=item.id, output_index=item.index, content_index=0, text=text
        )

    def _summary_part(self, kind: str, item: _Item) -> Event:
        return self._event(
            kind,
            item_id=item.id,
            output_index=item.index,
            summary_index=0,
            text="".join(item.text),
        )

    def _item_proto(self, item: _Item, status: str) -> responses_pb2.OutputItem:
        out = responses_pb2.OutputItem()
        text = "".join(item.text)
        if item.kind == "reasoning":
            details = shown_details(tuple(item.details.values()), self._exclude)
            summary = None if self._exclude or status != "completed" else text
            out.reasoning.CopyFrom(reasoning_item(item.id, summary, details))
            out.reasoning.status = status
        elif item.kind == "message":
            out.message.id, out.message.status = item.id, status
            out.message.text = text if status != "in_progress" else ""
        else:
            call = out.function_call
            call.id, call.call_id, call.name, call.status = item.id, item.call_id, item.name, status
            call.arguments = text if status != "in_progress" else ""
        return out

    def _close(self, status: str = "completed") -> list[Event]:
        item, self._open = self._open, None
        if item is None:
            return []
        text = "".join(item.text)
        events = []
        if item.kind == "message":
            events.append(
                self._event(
                    "response.output_text.done",
                    item_id=item.id,
                    output_index=item.index,
                    content_index=0,
                    text=text,
                )
            )
            events.append(self._part("response.content_part.done", item, text))
        elif item.kind == "call":
            events.append(
                self._event(
                    "response.function_call_arguments.done",
                    item_id=item.id,
                    output_index=item.index,
                    text=text,
                )
            )
        elif item.text and not self._exclude:  # a summary part was opened
            events.append(
                self._event(
                    "response.reasoning_summary_text.done",
                    item_id=item.id,
                    output_index=item.index,
                    summary_index=0,
                    text=text,
                )
            )
            events.append(self._summary_part("response.reasoning_summary_part.done", item))
        done = self._item_proto(item, "completed" if item.kind != "message" else status)
        self._output[item.index] = done
        events.append(self._event("response.output_item.done", output_index=item.index, item=done))
        return events

    # --- deltas -------------------------------------------------------------------

    def feed(self, delta: chat.ChatDelta) -> list[Event]:
        if delta.usage is not None:
            self.usage = delta.usage
        events: list[Event] = []
        for choice in delta.choices:
            if choice.index != 0:  # Responses has one output; `n` is not offered
                continue
            self.finish_reason = choice.finish_reason or self.finish_reason
            if choice.reasoning or choice.reasoning_details:
                events += self._reasoning(choice)
            if choice.content or choice.refusal:
                events += self._text(choice.content or choice.refusal or "")
            for call in choice.tool_calls:
                events += self._call(call)
        return events

    def _reasoning(self, choice: chat.ChoiceDelta) -> list[Event]:
        events: list[Event] = []
        item = self._open
        if item is None or item.kind != "reasoning":
            events += self._close()
            events += self._open_item("reasoning", f"{self._ids[1]}_{len(self._output)}")
            item = self._open
            assert item is not None
        for detail in choice.reasoning_details:
            item.details[detail.index] = _merge(item.details.get(detail.index), detail)
        if choice.reasoning:
            self.produced_chars += len(choice.reasoning)
            if not item.text and not self._exclude:  # the summary's part opens with its text
                events.append(self._summary_part("response.reasoning_summary_part.added", item))
            item.text.append(choice.reasoning)
            if not self._exclude:
                events.append(
                    self._event(
                        "response.reasoning_summary_text.delta",
                        item_id=item.id,
                        output_index=item.index,
                        summary_index=0,
                        delta=choice.reasoning,
                    )
                )
        return events

    def _text(self, text: str) -> list[Event]:
        events: list[Event] = []
        item = self._open
        if item is None or item.kind != "message":
            events += self._close()
            events += self._open_item("message", self._ids[0])
            item = self._open
            assert item is not None
        self.produced_chars += len(text)
        item.text.append(text)
        events.append(
            self._event(
                "response.output_text.delta",
                item_id=item.id,
                output_index=item.index,
                content_index=0,
                delta=text,
            )
        )
        return events

    def _call(self, call: chat.ToolCallDelta) -> list[Event]:
        events: list[Event] = []
        item = self._open
        if item is None or item.kind != "call" or item.tool_index != call.index:
            events += self._close()
            events += self._open_item(
                "call",
                f"{self._ids[2]}_{call.index}",
                call_id=call.id or "",
                name=call.name or "",
                tool_index=call.index,
            )
            item = self._open
            assert item is not None
        if call.arguments:
            self.produced_chars += len(call.arguments)
            item.text.append(call.arguments)
            events.append(
                self._event(
                    "response.function_call_arguments.delta",
                    item_id=item.id,
                    output_index=item.index,
                    delta=call.arguments,
                )
            )
        return events

    def finish(self, usage: chat.Usage, cost: float) -> list[Event]:
        """Close the open item, then `response.completed` (or `.incomplete`) with it all."""
        status, reason = status_of(self.finish_reason)
        events = self._close(status)
        final = self._snapshot(status)
        final.incomplete_reason = reason
        final.output.extend(self._output)
        usage_to_proto(usage, final.usage)
        final.usage.cost = cost
        kind = "response.completed" if status == "completed" else "response.incomplete"
        events.append(self._event(kind, response=final))
        return events
