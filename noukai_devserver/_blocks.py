"""Value types shared by the engine and the driver, and `blockOverrides`.

`apply_overrides` is the one place a request changes a block: known keys
(`model`, `system`, `prompt`, `stream`) replace the block's fields when their
type is right; anything else (e.g. `temperature`) is kept as an option, which
the local models accept and ignore.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ._flows import Block


@dataclass(frozen=True)
class EngineOptions:
    slow_seconds: float = 2.0
    stream_delay: float = 0.05
    snapshot_limit: int = 256 * 1024
    iteration_cap: int = 20
    openai_base_url: str | None = None


@dataclass
class Resume:
    """A tool resume: the block's conversation with the caller's tool results."""

    conversation: list[dict[str, Any]]
    iterations: int


@dataclass
class Usage:
    prompt: int = 0
    completion: int = 0
    cost: Decimal = Decimal(0)

    def tokens(self) -> dict[str, int]:
        return {"prompt": self.prompt, "completion": self.completion,
                "total": self.prompt + self.completion}


class BlockFailed(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


_OVERRIDABLE = {"model": "model", "system": "system", "prompt": "prompt", "stream": "stream"}


def apply_overrides(block: Block, overrides: Any) -> Block:
    """`blockOverrides[stepId]`: known keys replace block fields; others are options."""
    if not isinstance(overrides, dict) or not overrides:
        return block
    changes: dict[str, Any] = {}
    options = dict(block.options)
    for key, value in overrides.items():
        attr = _OVERRIDABLE.get(key)
        wanted = bool if attr == "stream" else str
        if attr and isinstance(value, wanted):
            changes[attr] = value
        else:
            options[key] = value
    return dataclasses.replace(block, options=options, **changes)
