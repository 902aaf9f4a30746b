"""Benchmark: events/s decoded by `events()` vs raw httpx line iteration (target ratio >= 0.8).

A canned server (a subprocess) answers `POST .../step` with one pre-rendered
stream of N frames: `run_started`, N `step_output` frames, `flow_completed`.
Raw httpx only splits the stream into lines; noukai_core decodes SSE, parses
JSON and builds a typed event per frame. The printed ratio is noukai_core's
events per second over raw httpx's, measured in one run, for two frame sizes:
small (~350 B, a streamed token chunk), where the fixed per-event cost of a
typed, validated event dominates, and large (~4 KB, a step's output), where
moving the bytes does.

Two context lines bound what any client could do: raw lines plus `json.loads`
of each payload, and raw lines plus pydantic validation of each payload into
its event model (no SSE state, no cursor): the cost every typed event pays.
On small frames that validation alone (~1 us per event here) costs more than
raw httpx's whole per-event work, which is why the small-frame ratio cannot
approach 0.8 while events stay validated pydantic models.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time

import httpx

ROUNDS = 9
SIZES = {
    "small": (20_000, "A step's partial output, of the size a streamed model chunk has. " * 4),
    "large": (4_000, "A step's full output, as a block of text. " * 95),
}


def _frame(event: str, payload: dict[str, object]) -> bytes:
    payload = {"eventType": event, "executionId": "e", **payload}
    return f"event: {event}\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()


def render(n: int, text: str) -> bytes:
    parts = [_frame("run_started", {"runId": "e", "stepCount": 1})]
    parts += [
        _frame("step_output", {"stepId": "s", "outputData": {"delta": text, "i": i}})
        for i in range(n)
    ]
    parts.append(_frame("flow_completed", {"runId": "e", "result": {"ok": True}}))
    return b"".join(parts)


async def _serve(size: str) -> None:
    body = render(*SIZES[size])
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nX-Request-ID: req_b\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
    )

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request = await reader.readuntil(b"\r\n\r\n")
                for line in request.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        await reader.readexactly(int(line.split(b":", 1)[1]))
                writer.write(head + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


def _raw(base_url: str, n: int) -> float:
    with httpx.Client() as client:
        start = time.perf_counter()
        with client.stream("POST", f"{base_url}/seq/o/p/f/step", json={"stepIndex": 0}) as response:
            events = sum(1 for line in response.iter_lines() if line.startswith("data:"))
        elapsed = time.perf_counter() - start
    assert events == n + 2
    return events / elapsed


def _raw_json(base_url: str, n: int) -> float:
    """Context only: raw lines plus `json.loads` of each payload, the least a typed client does."""
    with httpx.Client() as client:
        start = time.perf_counter()
        with client.stream("POST", f"{base_url}/seq/o/p/f/step", json={"stepIndex": 0}) as response:
            events = sum(
                1
                for line in response.iter_lines()
                if line.startswith("data:") and json.loads(line[5:])
            )
        elapsed = time.perf_counter() - start
    assert events == n + 2
    return events / elapsed


def _raw_typed(base_url: str, n: int) -> float:
    """Context only: raw lines, each payload validated into its typed event, nothing else.

    The floor for any client that hands out validated pydantic events: no SSE
    state machine, no cursor, no retries; only the per-event validation cost.
    """
    from noukai_core._models._events import EVENT_TYPES

    validators = {name: model.__pydantic_validator__ for name, model in EVENT_TYPES.items()}
    with httpx.Client() as client:
        start = time.perf_counter()
        events = 0
        with client.stream("POST", f"{base_url}/seq/o/p/f/step", json={"stepIndex": 0}) as response:
            name = ""
            for line in response.iter_lines():
                if line.startswith("event:"):
                    name = line[6:].strip()
                elif line.startswith("data:"):
                    validators[name].validate_json(line[5:])
                    events += 1
        elapsed = time.perf_counter() - start
    assert events == n + 2
    return events / elapsed


def _noukai(base_url: str, n: int) -> float:
    from noukai_core import Noukai

    with Noukai(api_key="nk_bench", base_url=base_url) as client:
        start = time.perf_counter()
        events = sum(1 for _ in client.flow("o/p/f").events(message="hi"))
        elapsed = time.perf_counter() - start
    assert events == n + 2
    return events / elapsed


def measure(size: str) -> None:
    n = SIZES[size][0]
    server = subprocess.Popen([sys.executable, __file__, "--serve", size], stdout=subprocess.PIPE)
    try:
        assert server.stdout is not None
        base_url = f"http://127.0.0.1:{int(server.stdout.readline())}/api/v1"
        # Interleaved rounds, best of each: a noisy neighbour then hurts all alike.
        runs: dict[str, list[float]] = {"raw": [], "raw_json": [], "raw_typed": [], "ours": []}
        for _ in range(ROUNDS):
            runs["raw"].append(_raw(base_url, n))
            runs["raw_json"].append(_raw_json(base_url, n))
            runs["raw_typed"].append(_raw_typed(base_url, n))
            runs["ours"].append(_noukai(base_url, n))
        raw, raw_json, raw_typed, ours = (
            max(runs[k]) for k in ("raw", "raw_json", "raw_typed", "ours")
        )
    finally:
        server.terminate()
        server.wait()
    print(f"[{size} frames] raw httpx lines: {raw:9.0f} events/s")
    print(f"[{size} frames] noukai_core:     {ours:9.0f} events/s")
    print(f"[{size} frames] raw lines+json:  {raw_json:9.0f} events/s (context)")
    print(f"[{size} frames] raw lines+typed: {raw_typed:9.0f} events/s (context)")
    print(f"[{size} frames] events ratio noukai_core/raw httpx = {ours / raw:.2f} (target >= 0.8)")
    print(
        f"[{size} frames] events ratio noukai_core/(raw httpx + json.loads) = "
        f"{ours / raw_json:.2f} (context)"
    )
    print(
        f"[{size} frames] events ratio noukai_core/(raw httpx + typed validation) = "
        f"{ours / raw_typed:.2f} (context)"
    )


def main() -> None:
    for size in SIZES:
        measure(size)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        asyncio.run(_serve(sys.argv[2]))
    else:
        main()
