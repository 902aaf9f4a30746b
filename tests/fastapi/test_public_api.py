from collections.abc import Callable

import noukai_fastapi

EXPECTED: list[str] = [
    "FlowEventsResponse",
    "NoukaiDep",
    "NoukaiNotConfiguredError",
    "NoukaiTraceMiddleware",
    "StreamedFlow",
    "flow_events_response",
    "flow_stream_router",
    "flow_stream_routes",
    "get_noukai",
    "noukai_client",
    "noukai_lifespan",
]


def test_public_api(check_public_api: Callable[..., None]) -> None:
    check_public_api(noukai_fastapi, EXPECTED)
