"""The client-side bound on tool-handler rounds, shared by `execute()` and the streams.

One rule, written once (DESIGN): a call given a `tool_handler` runs it at most
`max_tool_rounds` times; when the flow pauses for tools once more after that,
the call fails with `ToolCallLimitError` (code `TOOL_CALL_LIMIT_CLIENT`,
contract §8.4) instead of resuming, so a model that keeps asking for tools
can never loop (and bill) forever. A call without a handler never counts.
"""

from __future__ import annotations

from noukai_core._errors import ToolCallLimitError


class ToolRounds:
    """Handler rounds used so far by one call, against its limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def check(self, execution_id: str | None) -> None:
        """Before running the handler on a new pause: raise if the limit is reached."""
        if self.used >= self.limit:
            raise ToolCallLimitError(
                f"the flow still requests tools after {self.limit} round(s)",
                code="TOOL_CALL_LIMIT_CLIENT",
                execution_id=execution_id,
            )

    def count(self) -> None:
        """One more round of tool results was sent."""
        self.used += 1
