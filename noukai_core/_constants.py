"""Names and values fixed by the HTTP contract, defined once.

Integrations import the header and environment-variable names from the public
package rather than spelling them again, so a rename can never split the two.
"""

from __future__ import annotations

from typing import Final

API_VERSION: Final = "2026-05-31"
"""Pinned `X-Noukai-API-Version` (contract §1.2); every SDK version sends this value."""

HEADER_SESSION_ID: Final = "X-Session-Id"
"""Outbound session tag on fresh `/execute`, every `/step` and `/jobs` submits."""

HEADER_REPLAY: Final = "X-Noukai-Replay"
"""Inbound header (end user -> customer app) asking to replay a recorded session."""

HEADER_RESPONSE_SESSION: Final = "X-Noukai-Session"
"""Header the framework integrations put on the customer's responses."""

HEADER_IDEMPOTENCY_KEY: Final = "Idempotency-Key"
HEADER_REQUEST_ID: Final = "X-Request-ID"

API_KEY_ENV_VAR: Final = "NOUKAI_API_KEY"
ENV_ENV_VAR: Final = "NOUKAI_ENV"
BASE_URL_ENV_VAR: Final = "NOUKAI_BASE_URL"
REPLAY_ENABLED_ENV_VAR: Final = "NOUKAI_REPLAY_ENABLED"

API_KEY_PREFIX: Final = "nk_"

# 002's production host; the contract lists both historical hosts (§1.1, Q11).
PRODUCTION_BASE_URL: Final = "https://api.noukai.xyz/api/v1"
DEV_BASE_URL: Final = "http://localhost:8080/api/v1"
ENV_BASE_URLS: Final = {
    "production": PRODUCTION_BASE_URL,
    "dev": DEV_BASE_URL,
    "development": DEV_BASE_URL,
}

DEFAULT_TIMEOUT: Final = 300.0
DEFAULT_MAX_RETRIES: Final = 1
DEFAULT_MAX_TOOL_ROUNDS: Final = 10
# Each open stream holds a connection; httpx's default pool (100) would make the
# 101st concurrent stream wait for a free slot until it timed out.
DEFAULT_MAX_CONNECTIONS: Final = 1000
DEFAULT_MAX_KEEPALIVE: Final = 100
MAX_ATTACHMENTS: Final = 10
MAX_TOOLS: Final = 64
