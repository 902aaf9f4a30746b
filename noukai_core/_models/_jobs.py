"""Queue-backed job models (contract §9)."""

from __future__ import annotations

from typing import Any, Literal

from noukai_core._models._base import WireModel


class JobAccepted(WireModel):
    """The answer to a job submission."""

    execution_id: str
    status: str
    flow_id: str
    block_count: int


class JobStatus(WireModel):
    """One poll of a job; `status` is strictly one of four values (§9.2)."""

    execution_id: str
    status: Literal["pending", "running", "completed", "failed"]
    result: Any = None
    error: str | None = None

    @property
    def is_terminal(self) -> bool:
        return self.status in ("completed", "failed")
