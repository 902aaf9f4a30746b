"""Deterministic local models: no network, the same request gives the same reply.

Models, chosen by name:

- `local/echo-1` (and any unknown name, e.g. a `blockOverrides` model) answers
  `Echo: <last user turn>`.
- `local/story-1` tells a short multi-sentence story (for streamed output).
- `local/flaky-1` fails while `attempt <= fail_times`, then echoes.
- `local/fail-1` always fails.
- `local/slow-echo-1` echoes after the server's slow-block duration (the wait
  happens in the engine so it can be cancelled and heartbeats keep flowing).

Tool policy (contract §14.2 items 24-25): with tools offered and `toolChoice`
not `none`, a weather question makes one tool call per round, one per place
named in the *caller's* last user turn, in order; tool results are matched to
places by tool-call id, whatever their text; once every place has a result
the model answers from them. `required` calls a tool on every turn; a named
function is the tool called, and is called at least once.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

PRICES_PER_1K_TOKENS: dict[str, tuple[Decimal, Decimal]] = {
    "local/echo-1": (Decimal("0.0010"), Decimal("0.0020")),
    "local/story-1": (Decimal("0.0010"), Decimal("0.0030")),
    "local/flaky-1": (Decimal("0.0010"), Decimal("0.0020")),
    "local/fail-1": (Decimal("0.0010"), Decimal("0.0020")),
    "local/slow-echo-1": (Decimal("0.0010"), Decimal("0.0020")),
}
DEFAULT_PRICE = (Decimal("0.0030"), Decimal("0.0060"))
SLOW_MODELS = frozenset({"local/slow-echo-1"})
_WEATHER = re.compile(r"\b(weather|temperature|forecast|rain|raining|sunny|snow)\b", re.I)
_ANCHOR = re.compile(r"\b[Ii]n\b|:")
_NAME = re.compile(r"[A-ZÀ-ÖØ-Þ][\w'\-]*(?:[ \t]+[A-ZÀ-ÖØ-Þ][\w'\-]*)*")
_SEPARATOR = re.compile(r"[ \t]*,[ \t]*(?:and[ \t]+)?|[ \t]+and[ \t]+|[ \t]*&[ \t]*")


class ModelFailure(Exception):
    """A model call failed; `code` goes into the block's error object."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class ModelRequest:
    """What a block sends its model. `conversation` holds camelCase turns."""

    model: str
    system: str
    conversation: list[dict[str, Any]]
    caller_text: str
    tools: list[dict[str, Any]]
    tool_choice: Any
    attempt: int
    fail_times: int
    id_seed: str


@dataclass(frozen=True)
class ModelReply:
    text: str | None
    tool_calls: list[dict[str, Any]]
    prompt_tokens: int
    completion_tokens: int


def places_in(text: str) -> list[str]:
    """Capitalised names after "in" or a colon, with comma/"and" lists, in order."""
    found: list[str] = []
    for anchor in _ANCHOR.finditer(text):
        pos = anchor.end()
        while True:
            while pos < len(text) and text[pos] in " \t":
                pos += 1
            name = _NAME.match(text, pos)
            if not name:
                break
            if name.group(0) not in found:
                found.append(name.group(0))
            sep = _SEPARATOR.match(text, name.end())
            if not sep:
                break
            pos = sep.end()
    return found


def _tool_name(tool: dict[str, Any]) -> str:
    fn = tool.get("function")
    return str(fn.get("name", "")) if isinstance(fn, dict) else ""


def _answered(conversation: list[dict[str, Any]]) -> tuple[dict[str, str], int]:
    """Map each requested place to its tool result (matched by call id)."""
    place_of: dict[str, str] = {}
    results: dict[str, str] = {}
    rounds = 0
    for turn in conversation:
        calls = turn.get("toolCalls") or []
        if turn.get("role") == "assistant" and calls:
            rounds += 1
            for call in calls if isinstance(calls, list) else []:
                if not isinstance(call, dict):
                    continue
                try:
                    args = json.loads(call["function"]["arguments"])
                except (KeyError, TypeError, ValueError):
                    args = {}
                location = args.get("location", "") if isinstance(args, dict) else ""
                place_of[str(call.get("id"))] = str(location)
        elif turn.get("role") == "tool":
            call_id = str(turn.get("toolCallId"))
            if call_id in place_of:
                results[place_of[call_id]] = str(turn.get("content", ""))
    return results, rounds


def _tokens(text: str) -> int:
    return max(1, len(text) // 4 + 1)


def _last_user(conversation: list[dict[str, Any]]) -> str:
    for turn in reversed(conversation):
        if turn.get("role") == "user":
            content = turn.get("content")
            return content if isinstance(content, str) else json.dumps(content)
    return ""


def _story(subject: str) -> str:
    about = subject.strip().rstrip(".?!") or "a quiet server"
    return (f"Once upon a time there was {about}. "
            "Every morning it woke before the sun. "
            "It answered every request with care. "
            "One day a stream of questions arrived at once. "
            "It handled them all, one frame at a time. "
            "And everyone went home happy.")


def complete(req: ModelRequest) -> ModelReply:
    """The model call. Raises `ModelFailure` for failing models."""
    if req.model == "local/fail-1":
        raise ModelFailure("MODEL_ERROR", "local/fail-1 always fails")
    if req.model == "local/flaky-1" and req.attempt <= req.fail_times:
        raise ModelFailure("MODEL_UNAVAILABLE",
                           f"local/flaky-1 failed attempt {req.attempt} (transient)")
    prompt_text = req.system + "".join(
        str(t.get("content") or "") for t in req.conversation)
    prompt_tokens = _tokens(prompt_text)
    call = _tool_decision(req)
    if call is not None:
        return ModelReply(None, [call], prompt_tokens, _tokens(json.dumps(call)))
    results, _ = _answered(req.conversation)
    if results:
        places = places_in(req.caller_text)
        ordered = [p for p in places if p in results] + [p for p in results if p not in places]
        text = "Weather report: " + "; ".join(
            f"{p}: {results[p]}" if p else results[p] for p in ordered) + "."
    elif req.model == "local/story-1":
        text = _story(_last_user(req.conversation))
    else:
        text = f"Echo: {_last_user(req.conversation)}"
    return ModelReply(text, [], prompt_tokens, _tokens(text))


def _tool_decision(req: ModelRequest) -> dict[str, Any] | None:
    names = [n for n in (_tool_name(t) for t in req.tools) if n]
    choice = req.tool_choice
    if not names or choice == "none":
        return None
    forced = None
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        forced = str(choice["function"].get("name") or "") or None
    name = forced or ("get_weather" if "get_weather" in names else names[0])
    places = places_in(req.caller_text)
    results, rounds = _answered(req.conversation)
    pending = [p for p in places if p not in results]
    wants = bool(_WEATHER.search(req.caller_text)) or forced is not None or choice == "required"
    if pending and wants:
        location = pending[0]
    elif choice == "required":
        location = places[-1] if places else req.caller_text
    elif forced is not None and rounds == 0:
        location = req.caller_text
    else:
        return None
    digest = hashlib.sha256(f"{req.id_seed}:{rounds}:{location}".encode()).hexdigest()
    return {
        "id": f"call_{digest[:24]}",
        "type": "function",
        "function": {"name": name, "arguments": json.dumps({"location": location})},
    }


def cost_usd(model: str, prompt_tokens: int, completion_tokens: int) -> Decimal:
    """Cost from the per-model price table, rounded to 6 decimal places."""
    price_in, price_out = PRICES_PER_1K_TOKENS.get(model, DEFAULT_PRICE)
    raw = (price_in * prompt_tokens + price_out * completion_tokens) / 1000
    return raw.quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP)


def money(value: Decimal) -> str:
    """Fixed-point decimal string, never scientific notation (contract §1.4)."""
    return f"{value.quantize(Decimal('0.000001')):f}"
