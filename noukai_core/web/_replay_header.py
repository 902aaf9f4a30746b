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

import os
import uuid
from collections.abc import Mapping

#: Values of the gate variable that turn replay on (case-insensitive).
_TRUE_VALUES = frozenset({"1", "true", "yes", "on"})


class InvalidReplayHeader(ValueError):
    """The replay header is present, the gate is on, and the value is not a UUID."""

    code = "INVALID_SESSION_ID"


def replay_enabled(environ: Mapping[str, str] | None = None, *, var: str) -> bool:
    """Whether the replay gate variable `var` is set to a true value.

    Read on every request (not once at import) so a test or an operator can
    flip it without reloading modules.
    """
    env = os.environ if environ is None else environ
    return env.get(var, "").strip().lower() in _TRUE_VALUES


def replay_session_id(header_value: str | None, *, enabled: bool) -> str | None:
    """The session to replay for a request, or `None` for a normal (capture) request.

    `None` when the gate is off or the header is absent or blank. Otherwise
    the canonical lowercase UUID string; raises `InvalidReplayHeader` when the
    value is not a UUID.
    """
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
