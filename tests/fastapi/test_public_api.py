from collections.abc import Callable

import noukai_fastapi

EXPECTED: list[str] = []


def test_public_api(check_public_api: Callable[..., None]) -> None:
    check_public_api(noukai_fastapi, EXPECTED)
