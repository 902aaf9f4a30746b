"""Server-side `Idempotency-Key` handling for the POSTs that start work.

Scope of a key: (API key fingerprint, request path, key). Rules:
- first request: runs normally; its outcome is stored when it finishes, unless
  it is a 5xx (a retry after a server failure must be able to run again);
- a repeat while the first still runs: 409 `IDEMPOTENCY_IN_PROGRESS`;
- a repeat after it finished: the stored status and body, with
  `Idempotent-Replayed: true`; the flow does not run again;
- the same key with a different body: 422 `IDEMPOTENCY_KEY_MISMATCH`;
- `/step` streams are never replayed or silently re-run: a finished stream's
  key answers 409 `IDEMPOTENCY_KEY_REUSED`.
Outcomes live in the database, so they survive a restart.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi.responses import JSONResponse
from starlette.responses import Response

from . import _store as db
from ._errors import ApiError

HEADER = "idempotency-key"
MAX_KEY_LENGTH = 255


def fingerprint(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


class Idempotency:
    def __init__(self, store: db.Store) -> None:
        self.store = store
        self._running: set[str] = set()

    @staticmethod
    def scope(key_id: str, path: str, key: str) -> str:
        if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
            raise ApiError(400, "IDEMPOTENCY_KEY_INVALID",
                           f"Idempotency-Key must be 1-{MAX_KEY_LENGTH} printable characters")
        return f"{key_id}:{path}:{key}"

    async def begin(self, scope: str, print_: str) -> JSONResponse | None:
        """None: go ahead (the key is now in progress); else the stored outcome."""
        if scope in self._running:
            raise ApiError(409, "IDEMPOTENCY_IN_PROGRESS",
                           "a request with this Idempotency-Key is still running")
        self._running.add(scope)  # before any await: two racing repeats cannot both run
        stored = await self.store.call(db.idempotency_get, scope)
        if stored is None:
            return None
        self._running.discard(scope)
        if stored["fingerprint"] != print_:
            raise ApiError(422, "IDEMPOTENCY_KEY_MISMATCH",
                           "this Idempotency-Key was used with a different request body")
        return JSONResponse(json.loads(stored["body"]), status_code=stored["status"],
                            headers={"Idempotent-Replayed": "true"})

    async def finish(self, scope: str, print_: str, status: int,
                     body: dict[str, Any]) -> None:
        try:
            if status < 500:
                await self.store.call(db.idempotency_put, scope, print_, status,
                                      json.dumps(body), time.time())
        finally:
            self._running.discard(scope)

    def finish_nowait(self, scope: str, print_: str, status: int,
                      body: dict[str, Any]) -> None:
        """For stream ends (possibly inside cancellation): queue the write, no await."""
        if status < 500:
            self.store.submit(db.idempotency_put, scope, print_, status, json.dumps(body),
                              time.time())
        self._running.discard(scope)

    def abandon(self, scope: str) -> None:
        self._running.discard(scope)


@dataclass(frozen=True)
class Claim:
    """An Idempotency-Key a request holds while it runs; `once` settles it on errors,
    the work settles it on success (`finish`, or `stream_ended` for a stream)."""

    keeper: Idempotency
    scope: str
    print_: str

    async def finish(self, status: int, body: dict[str, Any]) -> None:
        await self.keeper.finish(self.scope, self.print_, status, body)

    def stream_ended(self) -> None:
        """A stream's key never replays the stream: later repeats get 409."""
        self.keeper.finish_nowait(self.scope, self.print_, 409, STREAM_REUSED)


async def once(keeper: Idempotency, key_id: str, path: str, key: str | None,
               body: dict[str, Any],
               work: Callable[[Claim | None], Awaitable[Response]]) -> Response:
    """Run `work` at most once per Idempotency-Key (`key` None: no key, just run it).

    A stored outcome is answered without running anything. An `ApiError` from
    `work` is stored as the key's outcome; anything else (a bug, cancellation)
    releases the key so a retry can run.
    """
    if key is None:
        return await work(None)
    claim = Claim(keeper, Idempotency.scope(key_id, path, key), fingerprint(body))
    stored = await keeper.begin(claim.scope, claim.print_)
    if stored is not None:
        return stored
    try:
        return await work(claim)
    except ApiError as exc:
        await claim.finish(exc.status, exc.body())
        raise
    except BaseException:
        keeper.abandon(claim.scope)
        raise


STREAM_REUSED = {"detail": {"code": "IDEMPOTENCY_KEY_REUSED",
                            "message": "this Idempotency-Key started a stream that has "
                                       "ended; streams are never re-run"}}
