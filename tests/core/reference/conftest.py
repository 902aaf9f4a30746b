"""The reference examples' fixture: a user environment pointing at the dev server."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def env(noukai_devserver: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("NOUKAI_API_KEY", noukai_devserver.api_key)
    monkeypatch.setenv("NOUKAI_BASE_URL", noukai_devserver.base_url)
    return noukai_devserver
