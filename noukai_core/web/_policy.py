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
gives it) with `apply`, or on a typed event with `dump_json` (the fast path
a passthrough uses), so it knows nothing of a framework, and it never
mutates its input. Field names match in both wire (camelCase) and Python
(snake_case) spelling.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import BaseModel

from noukai_core.web._sse import encode_json_bytes

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


@dataclass(frozen=True)
class _CompiledRules:
    """Drop rules resolved once: every spelling of a top-level key, and nested rules."""

    drop: frozenset[str]
    nested: Mapping[str, _CompiledRules]

    def apply(self, data: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in data.items():
            if key in self.drop:
                continue
            inner = self.nested.get(key)
            if inner is not None and isinstance(value, Mapping):
                value = inner.apply(value)
            out[key] = value
        return out


@functools.lru_cache(maxsize=256)
def _compile(rules: frozenset[str]) -> _CompiledRules:
    drop: set[str] = set()
    children: dict[str, set[str]] = {}
    for rule in rules:
        head, _, rest = rule.partition(".")
        if rest:
            for spelling in _spellings(head):
                children.setdefault(spelling, set()).add(rest)
        else:
            drop |= _spellings(head)
    nested = {key: _compile(frozenset(sub)) for key, sub in children.items()}
    return _CompiledRules(frozenset(drop), nested)


#: Per (event class, event type): the pydantic `exclude` equivalent to the drop
#: rules (None: the rules need the dict path), and whether a set `error` field
#: must take the dict path to be reduced to its code.
_Plan = tuple["dict[str, Any] | None", bool]

#: What a stream knows about one typed event class, worked out on its first
#: event by `BrowserFrameEncoder`: (event type, frame head up to the id, or
#: None when the policy drops the type; serializer; pydantic `exclude` equal to
#: the drop rules; whether a set `error` must take the dict path to be reduced
#: to its code). A tuple, not a dataclass: it is read once per streamed event,
#: and indexing a tuple is the cheapest read Python has.
FramePlan = tuple[str, "bytes | None", Callable[..., bytes], "dict[str, Any] | None", bool]


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
    _compiled: dict[str, _CompiledRules] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _plans: dict[tuple[type[BaseModel], str], _Plan] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    # Per event class, the frame plan `BrowserFrameEncoder` works out from a
    # class's first event. Kept here, not per encoder, so every stream under
    # this policy starts with its plans known: most runs stream a few dozen
    # events, and working out plans again per stream cost more than the
    # streaming of those events did. Plans depend only on the class and this
    # policy; two threads that learn one at once store equal values.
    _frame_plans: dict[type[Any], FramePlan] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

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

    def _rules(self, event_type: str) -> _CompiledRules:
        # Resolved per event type on first use: the per-event path is then one
        # pass over the event's keys with set lookups.
        compiled = self._compiled.get(event_type)
        if compiled is None:
            rules = self.drop_fields.get(ALL_EVENTS, frozenset()) | self.drop_fields.get(
                event_type, frozenset()
            )
            compiled = _compile(frozenset(rules - self.keep_fields.get(event_type, frozenset())))
            self._compiled[event_type] = compiled
        return compiled

    def allows(self, event_type: str) -> bool:
        return event_type in self.forward

    def apply(self, event_type: str, data: Mapping[str, Any]) -> dict[str, Any] | None:
        """The browser's view of one event, or `None` when it must not be sent.

        `data` is the event as a dict; it is not modified.
        """
        if event_type not in self.forward:
            return None
        out = self._rules(event_type).apply(data)
        if not self.expose_error_messages:
            out = _codes_only(out)
        return out

    def _typed_plan(self, model: type[BaseModel], event_type: str) -> _Plan:
        """How events of `model` tagged `event_type` are serialised (worked out once).

        Shared by `dump_json` and `BrowserFrameEncoder`, so both apply the
        rules the same way.
        """
        key = (model, event_type)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = _model_plan(model, self._rules(event_type),
                                                  self.expose_error_messages)
        return plan

    def dump_json(self, event: BaseModel) -> bytes | None:
        """The browser's view of a typed event (a noukai_core event model) as JSON.

        Equal to `apply` on the event's `model_dump(by_alias=True,
        exclude_none=True)`, encoded as compact JSON (a test holds the two
        equal), but for the common events the drop rules become a pydantic
        `exclude` worked out once per event class, so the event is serialised
        in one call without an intermediate dict: this runs once per streamed
        event. Events whose `error` must be reduced to its code, and rules
        nested deeper than one level, take the dict path.
        """
        event_type = event.event_type  # type: ignore[attr-defined]
        if event_type not in self.forward:
            return None
        exclude, error_field = self._typed_plan(type(event), event_type)
        if exclude is None or (error_field and event.error is not None):  # type: ignore[attr-defined]
            data = event.model_dump(mode="json", by_alias=True, exclude_none=True)
            visible = self.apply(event_type, data)
            return None if visible is None else encode_json_bytes(visible)
        # The model's own serializer, called directly: `model_dump_json` would
        # add a Python wrapper and a str -> bytes round trip per event.
        return type(event).__pydantic_serializer__.to_json(
            event, by_alias=True, exclude_none=True, exclude=exclude or None
        )


def _model_plan(model: type[BaseModel], rules: _CompiledRules, expose_errors: bool) -> _Plan:
    """(pydantic exclude or None for "use the dict path", whether `error` needs the dict path)."""
    return _exclude_plan(model, rules), not expose_errors and "error" in model.model_fields


def _exclude_plan(model: type[BaseModel], rules: _CompiledRules) -> dict[str, Any] | None:
    """The pydantic `exclude` equivalent to `rules` for `model`, or `None` if there is none."""
    plan: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        wire = info.serialization_alias or info.alias or name
        if name in rules.drop or wire in rules.drop:
            plan[name] = True
            continue
        inner = rules.nested.get(wire) or rules.nested.get(name)
        if inner is not None:
            if inner.nested:
                return None
            plan[name] = dict.fromkeys(inner.drop, True)
    return plan


def _merged(
    table: Mapping[str, frozenset[str]], key: str, fields: Iterable[str]
) -> dict[str, frozenset[str]]:
    merged = dict(table)
    merged[key] = merged.get(key, frozenset()) | frozenset(fields)
    return merged


def _codes_only(data: dict[str, Any]) -> dict[str, Any]:
    """Replace an `error` object's message by its code (the code is safe to show)."""
    if "error" not in data:
        return data
    error = data["error"]
    if isinstance(error, Mapping):
        data = dict(data)
        code = error.get("code")
        data["error"] = {"code": code if isinstance(code, str) else "STEP_FAILED"}
    elif isinstance(error, str):
        data = dict(data)
        data["error"] = {"code": "STEP_FAILED"}
    return data
