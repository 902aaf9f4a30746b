import subprocess
import sys
from collections.abc import Callable

import noukai_core.web

EXPECTED = [
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


def test_public_api(check_public_api: Callable[..., None]) -> None:
    check_public_api(noukai_core.web, EXPECTED)


def test_imports_no_web_framework_and_no_integration() -> None:
    blocked = [
        "fastapi",
        "starlette",
        "flask",
        "django",
        "uvicorn",
        "werkzeug",
        "noukai_fastapi",
        "noukai_flask",
        "noukai_django",
    ]
    script = "import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in blocked)
    script += "import noukai_core.web\n"
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
