"""Fixtures of the contract checks: a fresh fake Noukai per test, and a client on it."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from core_contract_fake import KEY, FakeNoukai

from noukai_core import Noukai


@pytest.fixture
def fake() -> Iterator[FakeNoukai]:
    server = FakeNoukai()
    yield server
    server.close()


@pytest.fixture
def client(fake: FakeNoukai) -> Iterator[Noukai]:
    with Noukai(KEY, base_url=fake.base_url, org="acme", project="app") as c:
        yield c
