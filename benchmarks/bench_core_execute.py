"""Benchmark: `execute()` round trips through noukai_core vs raw httpx (target ratio >= 0.85).

Both clients post the same body to the same canned-response server (a fixed
ExecuteResult; a subprocess, so the server never competes for our GIL) over
one keep-alive connection, and both parse the JSON answer. The printed ratio
is noukai_core's round trips per second over raw httpx's, measured in one run.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import httpx

RESULT = json.dumps(
    {
        "status": "completed",
        "result": {"response": "Hello!"},
        "executionId": "e",
        "flowId": "f",
        "blockCount": 1,
    }
).encode()
N = 1500
ROUNDS = 3


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if length:
                await reader.readexactly(length)
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Request-ID: req_b\r\n"
                + f"Content-Length: {len(RESULT)}\r\n\r\n".encode()
                + RESULT
            )
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()


async def _serve() -> None:
    server = await asyncio.start_server(_handle, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


def _raw(base_url: str) -> float:
    body = {
        "message": "hi",
        "parameters": {},
        "iterationsUsed": 0,
        "accumulatedOutputs": {},
        "trace": False,
    }
    headers = {"Authorization": "Bearer nk_bench", "Accept": "application/json"}
    with httpx.Client() as client:
        url = f"{base_url}/seq/o/p/f/execute"
        client.post(url, json=body, headers=headers).json()
        start = time.perf_counter()
        for _ in range(N):
            client.post(url, json=body, headers=headers).json()
        return N / (time.perf_counter() - start)


def _noukai(base_url: str) -> float:
    from noukai_core import Noukai

    with Noukai(api_key="nk_bench", base_url=base_url) as client:
        flow = client.flow("o/p/f")
        flow.execute(message="hi")
        start = time.perf_counter()
        for _ in range(N):
            flow.execute(message="hi")
        return N / (time.perf_counter() - start)


def main() -> None:
    server = subprocess.Popen([sys.executable, __file__, "--serve"], stdout=subprocess.PIPE)
    try:
        assert server.stdout is not None
        base_url = f"http://127.0.0.1:{int(server.stdout.readline())}/api/v1"
        # Interleaved rounds, best of each: a noisy neighbour then hurts both alike.
        raws, ourses = [], []
        for _ in range(ROUNDS):
            raws.append(_raw(base_url))
            ourses.append(_noukai(base_url))
        raw, ours = max(raws), max(ourses)
    finally:
        server.terminate()
        server.wait()
    print(f"raw httpx:   {raw:8.0f} round trips/s")
    print(f"noukai_core: {ours:8.0f} round trips/s")
    print(f"execute ratio noukai_core/raw httpx = {ours / raw:.2f} (target >= 0.85)")


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve"]:
        asyncio.run(_serve())
    else:
        main()
