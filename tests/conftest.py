"""Fixtures shared by every test directory.

The caller's `NOUKAI_*` variables are cleared for the whole session, so a
developer's real key or base URL can never leak into (or change) a test run.
"""

from __future__ import annotations

import os
import types
from collections.abc import Callable, Iterable

import pytest


def pytest_configure(config: pytest.Config) -> None:
    for name in [n for n in os.environ if n.startswith("NOUKAI_")]:
        del os.environ[name]


def _check_public_api(module: types.ModuleType, expected: Iterable[str]) -> None:
    """Assert `module.__all__` is exactly `expected`, importable, and complete.

    Complete: every public module-level name (not underscored, not a submodule)
    is listed, so nothing becomes public by accident.
    """
    listed = list(module.__all__)
    assert sorted(listed) == sorted(expected), "__all__ differs from the documented list"
    assert len(listed) == len(set(listed)), "__all__ lists a name twice"
    for name in listed:
        assert hasattr(module, name), f"{module.__name__}.__all__ names missing {name!r}"
    stray = [
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and type(value).__name__ != "_Feature"  # `from __future__ import annotations`
        and name not in listed
    ]
    assert not stray, f"public names missing from {module.__name__}.__all__: {stray}"


@pytest.fixture(scope="session")
def check_public_api() -> Callable[[types.ModuleType, Iterable[str]], None]:
    """The checker every package's test_public_api.py calls with its literal list."""
    return _check_public_api
