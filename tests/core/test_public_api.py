from collections.abc import Callable

import noukai_core

EXPECTED = [
    "__version__",
]


def test_public_api(check_public_api: Callable[..., None]) -> None:
    check_public_api(noukai_core, EXPECTED)


def test_version_is_a_string() -> None:
    assert noukai_core.__version__.count(".") == 2
