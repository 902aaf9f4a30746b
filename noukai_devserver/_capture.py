"""Capture modes: what a run stores of its inputs, outputs and errors (contract §11.3).

- `full`: snapshots verbatim.
- `redacted`: secrets (API-key-like strings, bearer tokens, e-mail addresses)
  masked in *inputs*; outputs stay verbatim so a replay still equals the live run.
- `metadata_only`: status, timings, tokens and cost; no snapshots.
- `off`: nothing per block (no attempt rows; the event log keeps run-level frames).

Snapshots larger than the limit are cut to a preview and marked truncated.
"""

from __future__ import annotations

import json
import re
from typing import Any

_SECRETS = [
    re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]+"),
    re.compile(r"\b(?:nk|sk|pk|rk)[_-][A-Za-z0-9_-]{6,}"),
    re.compile(r"\b(?:ghp|gho|xox[abp])[_-]?[A-Za-z0-9-]{8,}"),
    re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"),
]
MASK = "[REDACTED]"
SNAPSHOTS = ("full", "redacted")


def mask(value: Any) -> Any:
    """Mask secrets in every string of a JSON value (keys are left alone)."""
    if isinstance(value, str):
        for pattern in _SECRETS:
            value = pattern.sub(MASK, value)
        return value
    if isinstance(value, dict):
        return {k: mask(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask(v) for v in value]
    return value


def as_context(value: Any) -> dict[str, Any] | None:
    """Trace contexts must be objects: wrap anything else as `{"value": ...}`."""
    if value is None or isinstance(value, dict):
        return value
    return {"value": value}


def snapshot(value: Any, mode: str, *, is_input: bool, limit: int) -> tuple[Any, int, bool]:
    """(stored value, size in bytes of the original, truncated?) for one snapshot."""
    size = len(json.dumps(value, ensure_ascii=False).encode()) if value is not None else 0
    if mode not in SNAPSHOTS or value is None:
        return None, size, False
    stored = mask(value) if (mode == "redacted" and is_input) else value
    if size > limit:
        text = json.dumps(stored, ensure_ascii=False)
        return {"truncated": True, "preview": text[: max(0, limit // 2)]}, size, True
    return stored, size, False


def event_for_log(payload: dict[str, Any], mode: str) -> dict[str, Any] | None:
    """The version of a live event that the event log (and live trace) keeps.

    None means "do not log": `off` keeps no per-block input/output frames.
    """
    kind = payload.get("eventType")
    if mode == "full":
        return payload
    if mode == "redacted":
        if kind == "step_input":
            return {**payload, "inputData": mask(payload.get("inputData"))}
        if kind == "step_paused_for_tool_calls":
            return {**payload, "toolCallMessages": mask(payload.get("toolCallMessages"))}
        return payload
    if mode == "off" and kind in ("step_input", "step_output", "step_progress",
                                  "loop_completed"):
        return None
    stripped = dict(payload)
    for key, empty in (("inputData", None), ("outputData", None), ("output", None),
                       ("result", None), ("toolCallMessages", []), ("accumulatedOutputs", {})):
        if key in stripped:
            stripped[key] = empty
    return stripped
