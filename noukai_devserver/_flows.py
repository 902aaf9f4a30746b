"""Flow files: the block model, its validation, and template rendering.

A flow file is YAML (see the README for the format). It is parsed into frozen
dataclasses once; a run pins the *raw* validated mapping in the database, so a
step-through run or a published version keeps running the definition it
started with even if the file changes (contract §7.2, STALE_TREE avoided by
pinning).

Validation errors raise `WorkspaceError` naming the file, the field path and
what is wrong, so a bad file stops the server at start with a usable message.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

BLOCK_TYPES = ("llm", "template", "loop")
CAPTURE_MODES = ("full", "redacted", "metadata_only", "off")
_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_.\-]+)\s*\}\}")


class WorkspaceError(Exception):
    """A workspace or flow file is invalid; the message names file and field."""

    def __init__(self, source: str, location: str, problem: str) -> None:
        super().__init__(f"{source}: {location}: {problem}")
        self.source = source
        self.location = location
        self.problem = problem


@dataclass(frozen=True)
class RetryPolicy:
    """`max_attempts` counts the first try; `backoff_seconds` waits between tries."""

    max_attempts: int = 1
    backoff_seconds: float = 0.0


@dataclass(frozen=True)
class Block:
    """One block. Fields irrelevant to a block's type keep their defaults."""

    id: str
    name: str
    type: str
    model: str = "local/echo-1"
    system: str = ""
    prompt: str = "{{message}}"
    tools: bool = False
    stream: bool = False
    output_key: str = "response"
    fail_times: int = 0
    template: Any = None
    over: str = ""
    default_items: tuple[Any, ...] = ()
    blocks: tuple[Block, ...] = ()
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Flow:
    """A flow definition; `raw` is the validated mapping it was built from."""

    slug: str
    name: str
    kind: str
    message_required: bool
    required_parameters: tuple[str, ...]
    capture: str | None
    blocks: tuple[Block, ...]
    raw: dict[str, Any]

    def uses_tools(self) -> bool:
        return any(b.type == "llm" and b.tools for b in self.blocks)

    def tools_in_loop(self) -> bool:
        return any(inner.tools for b in self.blocks if b.type == "loop" for inner in b.blocks)


def _expect(cond: bool, source: str, location: str, problem: str) -> None:
    if not cond:
        raise WorkspaceError(source, location, problem)


def _parse_block(raw: Any, source: str, where: str, nested: bool) -> Block:
    _expect(isinstance(raw, dict), source, where, "a block must be a mapping")
    bid = raw.get("id")
    _expect(isinstance(bid, str) and bool(_ID_RE.match(bid)), source, f"{where}.id",
            "required, 1-64 characters of [A-Za-z0-9._-]")
    btype = raw.get("type")
    _expect(btype in BLOCK_TYPES, source, f"{where}.type", f"must be one of {BLOCK_TYPES}")
    name = raw.get("name", bid)
    _expect(isinstance(name, str), source, f"{where}.name", "must be a string")
    retry_raw = raw.get("retry", {}) or {}
    _expect(isinstance(retry_raw, dict), source, f"{where}.retry", "must be a mapping")
    attempts = retry_raw.get("maxAttempts", 1)
    _expect(isinstance(attempts, int) and 1 <= attempts <= 10, source,
            f"{where}.retry.maxAttempts", "must be an integer from 1 to 10")
    backoff = retry_raw.get("backoffSeconds", 0)
    _expect(isinstance(backoff, int | float) and backoff >= 0, source,
            f"{where}.retry.backoffSeconds", "must be a number >= 0")
    kwargs: dict[str, Any] = {
        "id": bid, "name": name, "type": btype,
        "retry": RetryPolicy(attempts, float(backoff)),
    }
    if btype == "llm":
        for key, attr in (("model", "model"), ("system", "system"), ("prompt", "prompt"),
                          ("outputKey", "output_key")):
            if key in raw:
                _expect(isinstance(raw[key], str), source, f"{where}.{key}", "must be a string")
                kwargs[attr] = raw[key]
        for key in ("tools", "stream"):
            if key in raw:
                _expect(isinstance(raw[key], bool), source, f"{where}.{key}", "must be a boolean")
                kwargs[key] = raw[key]
        fail_times = raw.get("failTimes", 0)
        _expect(isinstance(fail_times, int) and fail_times >= 0, source, f"{where}.failTimes",
                "must be an integer >= 0")
        kwargs["fail_times"] = fail_times
        _expect(not (nested and kwargs.get("tools")), source, f"{where}.tools",
                "tools are not allowed inside a loop")
        kwargs["options"] = {k: v for k, v in raw.items() if k in ("temperature", "maxTokens")}
    elif btype == "template":
        _expect("template" in raw, source, f"{where}.template", "required for a template block")
        kwargs["template"] = raw["template"]
    else:
        _expect(not nested, source, where, "loops cannot be nested")
        over = raw.get("over")
        _expect(isinstance(over, str) and bool(over), source, f"{where}.over",
                "required: a template naming the list to iterate over")
        default = raw.get("default", [])
        _expect(isinstance(default, list), source, f"{where}.default", "must be a list")
        inner = raw.get("blocks")
        _expect(isinstance(inner, list) and bool(inner), source, f"{where}.blocks",
                "a loop needs a non-empty list of blocks")
        kwargs["over"] = over
        kwargs["default_items"] = tuple(default)
        kwargs["blocks"] = tuple(
            _parse_block(b, source, f"{where}.blocks[{i}]", True) for i, b in enumerate(inner)
        )
    return Block(**kwargs)


def parse_flow(raw: Any, slug: str, source: str) -> Flow:
    """Validate a flow mapping; raise `WorkspaceError` naming the bad field."""
    _expect(isinstance(raw, dict), source, "(top level)", "a flow file must be a mapping")
    # YAML has types JSON lacks (dates, sets...): flows are JSON from here on.
    raw = json.loads(json.dumps(raw, default=str))
    blocks_raw = raw.get("blocks")
    _expect(isinstance(blocks_raw, list) and bool(blocks_raw), source, "blocks",
            "a flow needs a non-empty list of blocks")
    blocks = tuple(_parse_block(b, source, f"blocks[{i}]", False)
                   for i, b in enumerate(blocks_raw))
    ids = [b.id for b in blocks] + [i.id for b in blocks for i in b.blocks]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    _expect(not dupes, source, "blocks", f"duplicate block ids {dupes}")
    kind = raw.get("kind", "flow")
    _expect(kind in ("flow", "chat"), source, "kind", "must be 'flow' or 'chat'")
    message = raw.get("message", "optional")
    _expect(message in ("required", "optional"), source, "message",
            "must be 'required' or 'optional'")
    params = raw.get("parameters", {}) or {}
    _expect(isinstance(params, dict), source, "parameters", "must be a mapping")
    required = params.get("required", [])
    _expect(isinstance(required, list) and all(isinstance(p, str) for p in required),
            source, "parameters.required", "must be a list of names")
    capture = raw.get("capture")
    if capture is False:  # YAML 1.1 reads a bare `off` as false
        capture = raw["capture"] = "off"
    _expect(capture is None or capture in CAPTURE_MODES, source, "capture",
            f"must be one of {CAPTURE_MODES}")
    name = raw.get("name", slug)
    _expect(isinstance(name, str), source, "name", "must be a string")
    return Flow(slug, name, kind, message == "required", tuple(required), capture, blocks, raw)


def _lookup(context: dict[str, Any], path: str) -> Any:
    value: Any = context
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def render(template: Any, context: dict[str, Any]) -> Any:
    """Render `{{path}}` placeholders in strings, recursively through JSON values.

    A string that is exactly one placeholder yields the raw value (so a loop's
    `over: "{{parameters.items}}"` gives a list); otherwise values are
    interpolated, non-strings as compact JSON, missing ones as "".
    """
    if isinstance(template, dict):
        return {k: render(v, context) for k, v in template.items()}
    if isinstance(template, list):
        return [render(v, context) for v in template]
    if not isinstance(template, str):
        return template
    whole = _PLACEHOLDER.fullmatch(template.strip())
    if whole:
        return _lookup(context, whole.group(1))

    def one(match: re.Match[str]) -> str:
        value = _lookup(context, match.group(1))
        if value is None:
            return ""
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)

    return _PLACEHOLDER.sub(one, template)
