"""Benchmark: events/s decoded by `events()` vs raw httpx line iteration (target ratio >= 0.8).

A canned server (a subprocess) answers `POST .../step` with one pre-rendered
stream of N frames: `run_started`, N `step_output` frames, `flow_completed`.
Raw httpx only splits the stream into lines; noukai_core decodes SSE, parses
JSON and builds a typed, validated event per frame. The printed ratio is
noukai_core's events per second over raw httpx's, measured in one run
(interleaved rounds, best of each), for two frame sizes: small (~350 B, a
streamed token chunk), where the fixed per-event cost dominates, and large
(~4 KB, a step's output), where moving the bytes does.

Framing. The primary ratio uses the wire shape every SSE server sends, and
the dev server's exactly (`curl --raw` against `noukai-dev` shows it):
`Transfer-Encoding: chunked`, ONE chunk per event, the same response headers.
Every chunk then costs something in each layer of both clients (h11 and
httpcore for both; httpx's byte/text/line decoders on the raw side; the key
redactor, the SSE decoder and the step cursor on ours), so this is the cost
a user sees.

Earlier versions of this benchmark sent the whole stream as ONE
Content-Length body instead, and printed that as the primary ratio. No SSE
server sends a stream that way (it would have to know the whole run before
the first byte), so it is now a printed context line only: it hands both
clients 64 KB reads holding many frames each (~190 small or ~16 large),
which removes the per-chunk layers and isolates the pure decode cost (SSE,
JSON, validation), where line splitting in C is hard to match.

Context lines bound what any client could do: raw lines plus `json.loads` of
each payload, and raw lines plus pydantic validation of each payload into its
event model (no SSE state, no cursor): the cost every typed event pays. An
async line compares `AsyncNoukai` with raw `httpx.AsyncClient.aiter_lines()`
on the same chunked stream.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any

import httpx

ROUNDS = 9
SIZES = {
    "small": (20_000, "A step's partial output, of the size a streamed model chunk has. " * 4),
    "large": (4_000, "A step's full output, as a block of text. " * 95),
}
STEP_PATH = "/seq/o/p/f/step"


def _frame(event: str, payload: dict[str, object]) -> bytes:
    payload = {"eventType": event, "executionId": "e", **payload}
    return f"event: {event}\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()


def render_frames(n: int, text: str) -> list[bytes]:
    frames = [_frame("run_started", {"runId": "e", "stepCount": 1})]
    frames += [
        _frame("step_output", {"stepId": "s", "outputData": {"delta": text, "i": i}})
        for i in range(n)
    ]
    frames.append(_frame("flow_completed", {"runId": "e", "result": {"ok": True}}))
    return frames


# The dev server's `/step` response headers (uvicorn + StreamingResponse), in its order.
_HEAD = (
    b"HTTP/1.1 200 OK\r\ndate: Mon, 23 Nov 2026 09:00:00 GMT\r\nserver: uvicorn\r\n"
    b"cache-control: no-cache\r\nx-accel-buffering: no\r\n"
    b"content-type: text/event-stream; charset=utf-8\r\nx-request-id: req_bench\r\n"
)


def render_response(size: str, framing: str) -> bytes:
    """The whole canned response, head and body, as it goes on the wire."""
    frames = render_frames(*SIZES[size])
    if framing == "chunked":
        # One HTTP chunk per SSE frame, as uvicorn writes each event the app yields.
        body = b"".join(b"%x\r\n%s\r\n" % (len(frame), frame) for frame in frames) + b"0\r\n\r\n"
        return _HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + body
    body = b"".join(frames)
    return _HEAD + b"content-length: %d\r\n\r\n" % len(body) + body


async def _serve(size: str, framing: str) -> None:
    response = render_response(size, framing)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request = await reader.readuntil(b"\r\n\r\n")
                for line in request.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        await reader.readexactly(int(line.split(b":", 1)[1]))
                # Pre-rendered and written at once: the server's CPU stays out
                # of the measurement; the bytes are the same as event by event.
                writer.write(response)
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
        with client.stream("POST", base_url + STEP_PATH, json={"stepIndex": 0}) as response:
            events = sum(1 for line in response.iter_lines() if line.startswith("data:"))
        elapsed = time.perf_counter() - start
    assert events == n + 2
    return events / elapsed


def _raw_json(base_url: str, n: int) -> float:
    """Context only: raw lines plus `json.loads` of each payload, the least a typed client does."""
    with httpx.Client() as client:
        start = time.perf_counter()
        with client.stream("POST", base_url + STEP_PATH, json={"stepIndex": 0}) as response:
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
        with client.stream("POST", base_url + STEP_PATH, json={"stepIndex": 0}) as response:
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


async def _araw(base_url: str, n: int) -> float:
    async with httpx.AsyncClient() as client:
        start = time.perf_counter()
        events = 0
        async with client.stream("POST", base_url + STEP_PATH, json={"stepIndex": 0}) as response:
            async for line in response.aiter_lines():
                if line.startswith("data:"):
                    events += 1
        elapsed = time.perf_counter() - start
    assert events == n + 2
    return events / elapsed


async def _anoukai(base_url: str, n: int) -> float:
    from noukai_core import AsyncNoukai

    async with AsyncNoukai(api_key="nk_bench", base_url=base_url) as client:
        start = time.perf_counter()
        events = 0
        async for _ in client.flow("o/p/f").events(message="hi"):
            events += 1
        elapsed = time.perf_counter() - start
    assert events == n + 2
    return events / elapsed


def _start_server(size: str, framing: str) -> tuple[subprocess.Popen[bytes], str]:
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", size, framing], stdout=subprocess.PIPE
    )
    assert server.stdout is not None
    return server, f"http://127.0.0.1:{int(server.stdout.readline())}/api/v1"


Side = Callable[[str, int], "float | Coroutine[Any, Any, float]"]


def _best(rounds: int, sides: dict[str, Side], base_url: str, n: int) -> dict[str, float]:
    """Interleaved rounds, best of each: a noisy neighbour then hurts all sides alike."""
    runs: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(rounds):
        for name, side in sides.items():
            result = side(base_url, n)
            runs[name].append(result if isinstance(result, float) else asyncio.run(result))
    return {name: max(values) for name, values in runs.items()}


def measure(size: str) -> None:
    n = SIZES[size][0]
    server, base_url = _start_server(size, "chunked")
    try:
        best = _best(
            ROUNDS,
            {
                "raw": _raw,
                "ours": _noukai,
                "raw_json": _raw_json,
                "raw_typed": _raw_typed,
                "araw": _araw,
                "aours": _anoukai,
            },
            base_url,
            n,
        )
    finally:
        server.terminate()
        server.wait()
    server, base_url = _start_server(size, "content-length")
    try:
        whole = _best(ROUNDS, {"raw": _raw, "ours": _noukai}, base_url, n)
    finally:
        server.terminate()
        server.wait()
    tag = f"[{size} frames]"
    print(f"{tag} chunked, one chunk per event (the dev server's framing):")
    print(f"{tag}   raw httpx lines: {best['raw']:9.0f} events/s")
    print(f"{tag}   noukai_core:     {best['ours']:9.0f} events/s")
    print(f"{tag}   raw lines+json:  {best['raw_json']:9.0f} events/s (context)")
    print(f"{tag}   raw lines+typed: {best['raw_typed']:9.0f} events/s (context)")
    print(
        f"{tag} events ratio noukai_core/raw httpx = {best['ours'] / best['raw']:.2f} "
        "(target >= 0.8)"
    )
    print(
        f"{tag} events ratio noukai_core/(raw httpx + json.loads) = "
        f"{best['ours'] / best['raw_json']:.2f} (context)"
    )
    print(
        f"{tag} events ratio noukai_core/(raw httpx + typed validation) = "
        f"{best['ours'] / best['raw_typed']:.2f} (context)"
    )
    print(
        f"{tag} async: AsyncNoukai {best['aours']:9.0f} events/s, raw httpx.AsyncClient "
        f"{best['araw']:9.0f} events/s, ratio {best['aours'] / best['araw']:.2f} (context)"
    )
    print(
        f"{tag} one Content-Length body (no server sends this; pure decode cost): "
        f"noukai_core {whole['ours']:9.0f} events/s, raw httpx {whole['raw']:9.0f} events/s, "
        f"ratio {whole['ours'] / whole['raw']:.2f} (context)"
    )


def main() -> None:
    for size in SIZES:
        measure(size)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        asyncio.run(_serve(sys.argv[2], sys.argv[3]))
    else:
        main()
