"""Which flow events, and which of their fields, a browser may see.

A passthrough forwards a flow's events to an untrusted browser, so it is an
allowlist of event types plus a denylist of fields:

- forwarded by default: `run_started`, `step_started`, `step_output`,
  `step_completed`, `step_error`, `flow_completed`;
- never by default: `step_input` (the rendered prompt and inputs),
  `step_paused` (a protocol signal), tool-call pauses and their internals
  (`toolCallMessages`, `accumulatedOutputs`), token counts and costs;
- error messages are replaced by their code, because a provider's message can
  name the app's model, key or internal state.

The policy works on plain dicts (an event as `model_dump(by_alias=True)`
gives it), so it knows nothing of the client or of a framework, and it never
mutates its input. Field names match in both wire (camelCase) and Python
(snake_case) spelling.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

DEFAULT_FORWARDED_EVENTS: frozenset[str] = frozenset(
    {
        "run_started",
        "step_started",
        "step_output",
        "step_completed",
        "step_error",
        "flow_completed",
    }
)

#: Fields dropped from every event. Dotted names reach into nested objects
#: (`summary.tokens` is the token total inside `flow_completed.summary`).
DEFAULT_DROPPED_FIELDS: frozenset[str] = frozenset(
    {
        "tokens",
        "costUsd",
        "toolCallMessages",
        "accumulatedOutputs",
        "toolCalls",
        "iterationsUsed",
        "inputData",
        "summary.tokens",
        "summary.costUsd",
    }
)

#: Key under which `DEFAULT_DROPPED_FIELDS`-style rules apply to every type.
ALL_EVENTS = "*"

_CAMEL_BOUNDARY = re.compile(r"(?<!^)(?=[A-Z])")


def _spellings(name: str) -> frozenset[str]:
    """`costUsd` -> {`costUsd`, `cost_usd`}; `cost_usd` -> {`cost_usd`, `costUsd`}."""
    snake = _CAMEL_BOUNDARY.sub("_", name).lower()
    head, *rest = snake.split("_")
    camel = head + "".join(part.title() for part in rest)
    return frozenset({name, snake, camel})


def _drop_path(data: dict[str, Any], path: list[str]) -> None:
    """Remove `path` from `data` in place (copies nested dicts it walks into)."""
    head, rest = path[0], path[1:]
    for key in list(data):
        if key not in _spellings(head):
            continue
        if not rest:
            del data[key]
        elif isinstance(data[key], dict):
            child = dict(data[key])
            _drop_path(child, rest)
            data[key] = child


@dataclass(frozen=True)
class EventPolicy:
    """An allowlist of event types and, per type, the fields to drop.

    `forward`: the event types a browser receives; anything else is dropped,
    including types a future server adds, so a new event never leaks by default.
    `drop_fields`: field names (dotted for nested) per event type; the `"*"`
    entry applies to every type. `keep_fields`: per-type exceptions to the
    drop rules. `expose_error_messages`: keep the message of an `error`
    object (off by default: only its code is sent).

    Variants are built with `forwarding`, `dropping` and `keeping`, e.g.
    `EventPolicy().forwarding("step_input").keeping("step_input", ["inputData"])`.
    """

    forward: frozenset[str] = DEFAULT_FORWARDED_EVENTS
    drop_fields: Mapping[str, frozenset[str]] = field(
        default_factory=lambda: {ALL_EVENTS: DEFAULT_DROPPED_FIELDS}
    )
    keep_fields: Mapping[str, frozenset[str]] = field(default_factory=dict)
    expose_error_messages: bool = False

    def forwarding(self, *event_types: str) -> EventPolicy:
        """A copy that also forwards `event_types`."""
        return replace(self, forward=self.forward | frozenset(event_types))

    def without(self, *event_types: str) -> EventPolicy:
        """A copy that no longer forwards `event_types`."""
        return replace(self, forward=self.forward - frozenset(event_types))

    def dropping(self, event_type: str, fields: Iterable[str]) -> EventPolicy:
        """A copy that also drops `fields` from `event_type` (`"*"`: every type)."""
        return replace(self, drop_fields=_merged(self.drop_fields, event_type, fields))

    def keeping(self, event_type: str, fields: Iterable[str]) -> EventPolicy:
        """A copy that sends `fields` of `event_type` despite the drop rules."""
        return replace(self, keep_fields=_merged(self.keep_fields, event_type, fields))

    def allows(self, event_type: str) -> bool:
        return event_type in self.forward

    def apply(self, event_type: str, data: Mapping[str, Any]) -> dict[str, Any] | None:
        """The browser's view of one event, or `None` when it must not be sent.

        `data` is the event as a dict; it is not modified.
        """
        if event_type not in self.forward:
            return None
        out = dict(data)
        rules = self.drop_fields.get(ALL_EVENTS, frozenset()) | self.drop_fields.get(
            event_type, frozenset()
        )
        rules -= self.keep_fields.get(event_type, frozenset())
        for rule in rules:
            _drop_path(out, rule.split("."))
        if not self.expose_error_messages:
            out = _codes_only(out)
        return out


def _merged(
    table: Mapping[str, frozenset[str]], key: str, fields: Iterable[str]
) -> dict[str, frozenset[str]]:
    merged = dict(table)
    merged[key] = merged.get(key, frozenset()) | frozenset(fields)
    return merged


def _codes_only(data: dict[str, Any]) -> dict[str, Any]:
    """Replace an `error` object's message by its code (the code is safe to show)."""
    error = data.get("error")
    if isinstance(error, Mapping):
        data = dict(data)
        code = error.get("code")
        data["error"] = {"code": code if isinstance(code, str) else "STEP_FAILED"}
    elif isinstance(error, str):
        data = dict(data)
        data["error"] = {"code": "STEP_FAILED"}
    return data
