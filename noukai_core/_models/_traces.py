"""Run and trace models (contract §10.1, reference 000)."""

from __future__ import annotations

from typing import Any, Literal

from noukai_core._models._base import WireModel


class TokenBreakdown(WireModel):
    """Token usage of one LLM call; each count defaults to 0 when absent."""

    prompt: int = 0
    completion: int = 0
    total: int = 0


class RunSummary(WireModel):
    """Run-level metadata: `Trace.flow_run`."""

    id: str
    flow_id: str
    status: str
    trigger_type: str | None = None
    started_at: str | None = None
    completed_at: str | None = None
    duration_ms: int | None = None
    step_count: int | None = None


class StepTrace(WireModel):
    """One attempt of one block."""

    step_id: str
    attempt: int
    loop_index: int | None = None
    status: Literal["running", "completed", "failed", "skipped"]
    started_at: str | None = None
    completed_at: str | None = None
    duration_ms: int | None = None
    model_used: str | None = None
    tokens: TokenBreakdown | None = None
    cost_usd: str | None = None
    input_context: dict[str, Any] | None = None
    output_context: dict[str, Any] | None = None
    error_context: dict[str, Any] | None = None
    input_size_bytes: int | None = None
    output_size_bytes: int | None = None
    truncated: bool = False


class StepAttempts(WireModel):
    """Every attempt of one block (`step_trace(..., attempt="all")`)."""

    step_id: str
    attempts: list[StepTrace]


class Trace(WireModel):
    """A whole run: its summary and the latest attempt of each block."""

    flow_run: RunSummary
    steps: list[StepTrace]

    @property
    def summary(self) -> RunSummary:
        """002's name for `flow_run` (read-only alias)."""
        return self.flow_run
