"""One flow event in, the frame a browser may see out.

Every integration streams the same way: the policy decides what the browser
sees, the SSE encoder writes it. This is that one step, so the FastAPI, Flask
and Django passthroughs differ only in how bytes reach the socket.

Two forms, with the same output (a test holds them equal):

- `browser_frame(event, policy=..., event_id=...)`: one event, one frame;
- `BrowserFrameEncoder(policy)`: one per stream. It numbers the frames itself
  and knows, per event class, everything that does not depend on the event
  (the frame's head bytes, the serializer, the pydantic `exclude`; worked
  out once per policy and shared by its streams), so a
  streamed event costs one dict lookup, one call into pydantic's serializer
  and one small bytes format (the `id:`). `encode_into` appends the frame to
  a caller's buffer in pieces, for a passthrough that joins many frames into
  one write anyway.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from noukai_core.web._policy import EventPolicy, FramePlan
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


class BrowserFrameEncoder:
    """One stream's frames: the policy applied, `id:` numbered 1, 2, 3... on written frames.

    Invariants: `encode` returns exactly what `browser_frame` returns for the
    same event, policy and next id, and `encode_into` appends exactly those
    bytes; a dropped event takes no id, so a browser's `Last-Event-ID` counts
    the events it was sent. Not thread-safe: one encoder belongs to one stream.

    The fast path writes the serializer's JSON without re-checking it for
    line breaks: pydantic writes compact JSON, whose strings escape every
    control character, so the payload is always one line.
    """

    __slots__ = ("_plans", "last_id", "policy")

    def __init__(self, policy: EventPolicy) -> None:
        self.policy = policy
        self.last_id = 0
        self._plans: dict[type[Any], FramePlan] = policy._frame_plans  # shared, see there

    def encode(self, event: Any) -> bytes | None:
        """The next frame for `event`, or `None` when the policy drops it."""
        parts: list[bytes] = []
        self.encode_into(event, parts)
        return b"".join(parts) if parts else None

    def encode_into(self, event: Any, out: list[bytes]) -> int:
        """Append the next frame for `event` to `out` (nothing when the policy drops it).

        Returns the size of the JSON payload appended (0 for a dropped event),
        which a caller bounding its buffer can add up. The frame goes in as
        pieces (head with id, payload, blank line) that `b"".join(out)`
        assembles: the payload is then copied once, by that join, instead of
        once more into a frame of its own. This is the passthrough's
        per-event path, hence the tuple plan and the lack of helpers.
        """
        plan = self._plans.get(event.__class__)
        # A class's events normally share one event type; one that differs
        # (a hand-built event) takes the general path rather than a wrong
        # plan, as does an error that must be reduced to its code.
        if plan is None or plan[0] != event.event_type or (plan[4] and event.error is not None):
            frame = self._encode_other(event)
            if frame is None:
                return 0
            out.append(frame)
            return len(frame) - frame.index(b"\ndata: ") - 9  # the JSON, as below
        head = plan[1]
        if head is None:
            return 0
        payload = plan[2](event, by_alias=True, exclude_none=True, exclude=plan[3])
        self.last_id = last_id = self.last_id + 1
        out += (head % last_id, payload, b"\n\n")
        return len(payload)

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
        encode_event_json(event_type, b"{}")  # checks the type once, for every frame after
        # `%` in a type would be read as a format directive by `head % id`
        head = b"event: %s\nid: %%d\ndata: " % event_type.encode().replace(b"%", b"%%")
        forwarded = self.policy.allows(event_type)
        self._plans[model] = (
            event_type,
            head if forwarded else None,
            model.__pydantic_serializer__.to_json,
            exclude or None,
            error_field,
        )
