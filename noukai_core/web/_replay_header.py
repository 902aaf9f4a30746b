"""Deciding whether an inbound request asks for a replay, and which session.

Replay is a debugging aid: a header alone must never turn it on in
production. So the header counts only when the process was started with the
replay gate on (`NOUKAI_REPLAY_ENABLED`); otherwise it is ignored silently,
exactly as if it had not been sent. When the gate is on, the value must be a
UUID (the recorded session id); anything else is the caller's mistake and is
reported as such (`InvalidReplayHeader`, which maps to a 400), before any id
goes near a URL.
"""

from __future__ import annotations

import uuid

from noukai_core import replay_enabled


class InvalidReplayHeader(ValueError):
    """The replay header is present, the gate is on, and the value is not a UUID."""

    code = "INVALID_SESSION_ID"


def replay_session_id(header_value: str | None, *, enabled: bool | None = None) -> str | None:
    """The session to replay for a request, or `None` for a normal (capture) request.

    `enabled` defaults to `noukai_core.replay_enabled()`, read on every call
    (not once at import) so an operator or a test can flip the gate.
    `None` when the gate is off or the header is absent or blank. Otherwise
    the canonical lowercase UUID string; raises `InvalidReplayHeader` when the
    value is not a UUID.
    """
    if enabled is None:
        enabled = replay_enabled()
    if not enabled or header_value is None or not header_value.strip():
        return None
    text = header_value.strip()
    try:
        parsed = uuid.UUID(text)
    except ValueError:
        raise InvalidReplayHeader("X-Noukai-Replay must be a session id (a UUID)") from None
    # uuid.UUID also accepts braces, "urn:uuid:" and missing hyphens; accept
    # only the canonical hyphenated form, so one session has one spelling.
    if str(parsed) != text.lower():
        raise InvalidReplayHeader("X-Noukai-Replay must be a session id (a UUID)")
    return str(parsed)
