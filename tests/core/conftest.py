"""Core test fixtures: real socket servers (misbehaving, chunked) and an SSE frame builder."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from chunked_server import ChunkedStreamServer
from misbehaving_server import ScriptedServer, sse


@pytest.fixture
def scripted_server() -> Iterator[ScriptedServer]:
    server = ScriptedServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def chunked_server() -> Iterator[ChunkedStreamServer]:
    server = ChunkedStreamServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def frame() -> Callable[..., bytes]:
    return sse
