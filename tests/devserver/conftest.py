"""Fixtures for the dev server tests; helpers live in `devserver_helpers`."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from devserver_helpers import Api

from noukai_devserver.pytest_plugin import DevServer


@pytest.fixture(scope="session")
def server(noukai_devserver: DevServer) -> DevServer:
    return noukai_devserver


@pytest.fixture
def api(server: DevServer) -> Iterator[Api]:
    client = Api(server)
    yield client
    client.close()


@pytest.fixture
def broke_api(server: DevServer) -> Iterator[Api]:
    client = Api(server, server.broke_api_key)
    yield client
    client.close()
