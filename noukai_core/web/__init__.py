"""noukai_core.web: the framework-free half of every web integration.

What does not depend on a framework lives here once, and the FastAPI, Flask
and Django integrations only translate their request and response objects:

- `encode_event` / `encode_comment` / `SSE_HEADERS`: how an SSE frame is written;
- `EventPolicy`: which events and fields a browser may see, and
  `browser_frame` / `BrowserFrameEncoder`: one event in, the frame a browser
  may see out (the encoder is the per-stream fast form);
- `BrowserInputPolicy` / `is_json_media_type`: what a browser may send;
- `replay_session_id`: whether a replay header is honoured, and for which session;
- `replay_error_response` / `upstream_error_response`: the status and JSON
  body a browser gets for an error;
- `STREAM_SCRIPT_PATH`: the dependency-free JavaScript client module.

Nothing here imports a web framework (checked by a test).
"""

from noukai_core.web._browser_input import (
    BrowserInputError,
    BrowserInputPolicy,
    is_json_media_type,
)
from noukai_core.web._frames import BrowserFrameEncoder, browser_frame
from noukai_core.web._policy import (
    ALL_EVENTS,
    DEFAULT_DROPPED_FIELDS,
    DEFAULT_FORWARDED_EVENTS,
    EventPolicy,
)
from noukai_core.web._replay_header import InvalidReplayHeader, replay_session_id
from noukai_core.web._script import STREAM_SCRIPT_PATH
from noukai_core.web._sse import (
    SSE_HEADERS,
    encode_comment,
    encode_event,
    encode_event_json,
    encode_json,
)
from noukai_core.web._status import ErrorResponse, replay_error_response, upstream_error_response

__all__ = [
    "ALL_EVENTS",
    "DEFAULT_DROPPED_FIELDS",
    "DEFAULT_FORWARDED_EVENTS",
    "SSE_HEADERS",
    "STREAM_SCRIPT_PATH",
    "BrowserFrameEncoder",
    "BrowserInputError",
    "BrowserInputPolicy",
    "ErrorResponse",
    "EventPolicy",
    "InvalidReplayHeader",
    "browser_frame",
    "encode_comment",
    "encode_event",
    "encode_event_json",
    "encode_json",
    "is_json_media_type",
    "replay_error_response",
    "replay_session_id",
    "upstream_error_response",
]
