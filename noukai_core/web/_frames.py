"""One flow event in, the frame a browser may see out.

Every integration streams the same way: the policy decides what the browser
sees, the SSE encoder writes it. This is that one step, so the FastAPI, Flask
and Django passthroughs differ only in how bytes reach the socket.

Two forms, with the same output (a test holds them equal):

- `browser_frame(event, policy=..., event_id=...)`: one event, one frame;
- `BrowserFrameEncoder(policy)`: one per stream. It numbers the frames itself
  and keeps, per event class, everything that does not depend on the event
  (the frame's head bytes, the serializer, the pydantic `exclude`), so a
  streamed event costs one dict lookup, one call into pydantic's serializer
  and one bytes format.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from noukai_core.web._policy import EventPolicy
from noukai_core.web._sse import encode_event, encode_event_json


def browser_frame(event: Any, *, policy: EventPolicy, event_id: int) -> bytes | None:
    """The SSE frame for `event` (with `id: event_id`), or `None` when `policy` drops it.

    `event` is a typed event of noukai_core (the fast path: serialised in one
    call) or a plain mapping in wire shape (`eventType` names its type).
    """
    if isinstance(event, BaseModel) and hasattr(event, "event_type"):
        payload = policy.dump_json(event)
        if payload is None:
            return None
        return encode_event_json(str(event.event_type), payload, event_id=event_id)
    if not isinstance(event, Mapping):
        raise TypeError(f"not a flow event: {type(event).__name__}")
    data = dict(event)
    event_type = str(data.get("eventType") or data.get("event_type") or "message")
    visible = policy.apply(event_type, data)
    return None if visible is None else encode_event(event_type, visible, event_id=event_id)


@dataclass(frozen=True, slots=True)
class _ClassPlan:
    """What one stream knows about one typed event class, worked out on its first event.

    `head` is None when the policy drops the type. `exclude` is the pydantic
    `exclude` equal to the drop rules. `error_field`: a set `error` must be
    reduced to its code, which only the dict path does.
    """

    event_type: str
    head: bytes | None
    serialize: Callable[..., bytes]
    exclude: dict[str, Any] | None
    error_field: bool


class BrowserFrameEncoder:
    """One stream's frames: the policy applied, `id:` numbered 1, 2, 3... on written frames.

    Invariants: `encode` returns exactly what `browser_frame` returns for the
    same event, policy and next id; a dropped event takes no id, so a
    browser's `Last-Event-ID` counts the events it was sent. Not thread-safe:
    one encoder belongs to one stream.

    The fast path writes the serializer's JSON without re-checking it for
    line breaks: pydantic writes compact JSON, whose strings escape every
    control character, so the payload is always one line.
    """

    __slots__ = ("_plans", "last_id", "policy")

    def __init__(self, policy: EventPolicy) -> None:
        self.policy = policy
        self.last_id = 0
        self._plans: dict[type[Any], _ClassPlan] = {}

    def encode(self, event: Any) -> bytes | None:
        """The next frame for `event`, or `None` when the policy drops it."""
        plan = self._plans.get(event.__class__)
        # A class's events normally share one event type; one that differs
        # (a hand-built event) takes the general path rather than a wrong plan.
        if plan is None or event.event_type != plan.event_type:
            return self._encode_other(event)
        if plan.head is None:
            return None
        if plan.error_field and event.error is not None:
            return self._encode_other(event)
        payload = plan.serialize(event, by_alias=True, exclude_none=True, exclude=plan.exclude)
        self.last_id += 1
        return b"%s%d\ndata: %s\n\n" % (plan.head, self.last_id, payload)

    def _encode_other(self, event: Any) -> bytes | None:
        """Mappings, a class's first event, and events the fast path leaves to `browser_frame`."""
        if isinstance(event, BaseModel) and hasattr(event, "event_type"):
            self._learn(event)
        frame = browser_frame(event, policy=self.policy, event_id=self.last_id + 1)
        if frame is not None:
            self.last_id += 1
        return frame

    def _learn(self, event: BaseModel) -> None:
        model = type(event)
        if model in self._plans:
            return  # known; this event differs from its class's usual shape
        event_type = str(event.event_type)  # type: ignore[attr-defined]
        exclude, error_field = self.policy._typed_plan(model, event_type)
        if exclude is None:
            return  # rules nested too deep for pydantic's exclude: always the dict path
        forwarded = self.policy.allows(event_type)
        encode_event_json(event_type, b"{}")  # checks the type once, for every frame after
        head = b"event: %s\nid: " % event_type.encode()
        self._plans[model] = _ClassPlan(
            event_type=event_type,
            head=head if forwarded else None,
            serialize=model.__pydantic_serializer__.to_json,
            exclude=exclude or None,
            error_field=error_field,
        )
