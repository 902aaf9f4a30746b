"""Session grouping and replay scopes: one `ContextVar`, capture or replay.

Invariants:

- one owned `ContextVar` holds the active `TraceScope`; sync and async clients
  both read it, so a sync `Noukai` in a worker thread of an async request
  (which copies the context) joins the request's scope and its cassette;
- an inner scope joins the active one (same id, same mode) unless it asks for
  a *different* replay session (`ValueError`); only the outermost scope sets
  and resets the variable, in the same frame, and checks replay leftovers, so
  a decorator under a middleware never forks a session or turns replay into
  capture;
- a programmatic scope given a replay id while `NOUKAI_REPLAY_ENABLED` is off
  raises `ReplayDisabledError`; integrations instead drop a replay *header*
  silently by asking `replay_enabled()` first;
- the recorded session is fetched once per scope: at entry when a client (or
  transport) is given, else by the first client call inside the scope (two
  calls racing to be that first one may both fetch; the first answer loaded
  is the one every call replays from).
"""

from __future__ import annotations

import contextlib
import contextvars
import enum
import inspect
import os
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from noukai_core._constants import REPLAY_ENABLED_ENV_VAR
from noukai_core._errors import ReplayDisabledError
from noukai_core._protocol._replay import ReplayCassette, parse_session
from noukai_core._protocol._requests import canonical_session_uuid, session_spec
from noukai_core._session_ids import new_session_id

if TYPE_CHECKING:  # annotations only: the scope module does no I/O itself
    from noukai_core._client import AsyncNoukai, Noukai
    from noukai_core._protocol._wire import RawResponse
    from noukai_core._transport._async import AsyncTransport
    from noukai_core._transport._sync import SyncTransport

    Transport = SyncTransport | AsyncTransport


_TRUE_VALUES = ("1", "true", "yes", "on")


def replay_enabled() -> bool:
    """True when `NOUKAI_REPLAY_ENABLED` is set to a true value (1/true/yes/on)."""
    return os.environ.get(REPLAY_ENABLED_ENV_VAR, "").strip().lower() in _TRUE_VALUES


class ScopeMode(str, enum.Enum):
    """What a scope does with SDK calls: `normal` is reported outside any scope."""

    NORMAL = "normal"
    CAPTURE = "capture"
    REPLAY = "replay"


# Guards every scope's rarely used bookkeeping (extra cassettes, calls in
# flight). One lock for all scopes rather than one each: a scope opens on
# every request an integration serves, and its critical sections are a few
# dict operations long.
_BOOKKEEPING = threading.Lock()


class TraceScope:
    """An open session scope. Read `session_id` and `mode`; nothing else is needed.

    Cheap to open by design (one per request under a middleware): the
    bookkeeping dicts are made on first use, under `_BOOKKEEPING`.
    """

    __slots__ = ("_extra", "_in_flight", "cassette", "mode", "session_id")

    def __init__(self, session_id: str, mode: ScopeMode, cassette: ReplayCassette | None) -> None:
        self.session_id = session_id
        self.mode = mode
        self.cassette = cassette
        self._extra: dict[str, ReplayCassette] | None = None
        self._in_flight: dict[str, int] | None = None

    def cassette_for(self, session_id: str) -> ReplayCassette:
        """The cassette of an explicit `session_id=` inside a replay scope (one fetch each)."""
        canonical = canonical_session_uuid(session_id)
        if self.cassette is not None and canonical == self.cassette.session_id:
            return self.cassette
        with _BOOKKEEPING:
            if self._extra is None:
                self._extra = {}
            return self._extra.setdefault(canonical, ReplayCassette(canonical))

    @contextmanager
    def _tracking(self, slug: str) -> Iterator[None]:
        with _BOOKKEEPING:
            if self._in_flight is None:
                self._in_flight = {}
            in_flight = self._in_flight
            count = in_flight[slug] = in_flight.get(slug, 0) + 1
        if count > 1:
            # Replay matches by (slug, position): overlapping calls to one flow
            # record or consume positions in an order nobody chose.
            warnings.warn(
                f"concurrent calls to flow {slug!r} in one session scope: "
                "their replay order is undefined",
                UserWarning,
                stacklevel=4,
            )
        try:
            yield
        finally:
            with _BOOKKEEPING:
                in_flight[slug] -= 1

    def __repr__(self) -> str:
        return f"TraceScope(session_id={self.session_id!r}, mode={self.mode.value!r})"


_ACTIVE: contextvars.ContextVar[TraceScope | None] = contextvars.ContextVar(
    "noukai_trace_scope", default=None
)


def current_scope() -> TraceScope | None:
    return _ACTIVE.get()


def current_session_id() -> str | None:
    """The session id of the active scope, or None outside any scope."""
    scope = _ACTIVE.get()
    return scope.session_id if scope is not None else None


def concurrent_call_guard(slug: str) -> contextlib.AbstractContextManager[None]:
    """Track one SDK call to `slug` in the active scope (a no-op outside any scope)."""
    scope = _ACTIVE.get()
    return scope._tracking(slug) if scope is not None else contextlib.nullcontext()


@dataclass(frozen=True)
class SessionPlan:
    """Which session a call belongs to, and whether it is served from a cassette.

    Precedence: an explicit `session_id=` > the active scope > the client's
    default. Inside a replay scope an explicit id replays *that* session.
    """

    session_id: str | None
    cassette: ReplayCassette | None


def plan_session(explicit: str | None, default: str | None) -> SessionPlan:
    scope = _ACTIVE.get()
    if explicit is not None:
        if scope is not None and scope.mode is ScopeMode.REPLAY:
            return SessionPlan(explicit, scope.cassette_for(explicit))
        return SessionPlan(explicit, None)
    if scope is not None:
        return SessionPlan(scope.session_id, scope.cassette)
    return SessionPlan(default, None)


_CAPTURE = ScopeMode.CAPTURE  # looked up once: `_open` runs on every request


def _replay_scope(replay_session_id: str) -> TraceScope:
    if not replay_enabled():
        raise ReplayDisabledError(
            f"replay requested but {REPLAY_ENABLED_ENV_VAR} is not true",
            code="REPLAY_DISABLED",
        )
    canonical = canonical_session_uuid(replay_session_id)
    return TraceScope(canonical, ScopeMode.REPLAY, ReplayCassette(canonical))


def _join(active: TraceScope, replay_session_id: str | None) -> TraceScope:
    if replay_session_id is not None:
        wanted = canonical_session_uuid(replay_session_id)
        if active.mode is not ScopeMode.REPLAY or active.session_id != wanted:
            raise ValueError(
                f"cannot open replay session {wanted} inside active {active.mode.value} "
                f"session {active.session_id}"
            )
    return active


class _ScopeBlock:
    """One `with` / `async with` block of a scope; the twins differ only in the fetch.

    Classes, not `@contextmanager` generators, and flat code on the capture
    path: a capture scope opens on every request an integration serves, and
    each Python call there costs the request about 1% of a trivial route.
    The outermost block sets `_ACTIVE` at entry and resets it at exit (the
    same context, since a `with` block never changes context); an inner
    block joins the active scope and touches nothing. Replay leftovers are
    checked only after a clean exit: an exception from the block is the
    error the caller needs, not a leftover report on top. A block object is
    entered at most once.
    """

    __slots__ = ("_client", "_entered", "_replay_session_id", "_scope", "_token", "_transport")

    def __init__(
        self,
        *,
        replay_session_id: str | None = None,
        transport: Transport | None = None,
        client: Noukai | AsyncNoukai | None = None,
    ) -> None:
        self._replay_session_id = replay_session_id
        self._transport = transport
        self._client = client
        self._token: contextvars.Token[TraceScope | None] | None = None
        self._entered = False

    def _open(self) -> TraceScope | None:
        """The active scope to join, else None after making `self._scope` (not yet active).

        A second entry of one block object is refused: its one token slot
        would be overwritten, and the inner exit would end the outer block's
        session early.
        """
        if self._entered:
            raise RuntimeError("a trace scope block can be entered only once; make a new one")
        self._entered = True
        active = _ACTIVE.get()
        if active is not None:
            return _join(active, self._replay_session_id)
        if self._replay_session_id is None:
            self._scope = TraceScope(new_session_id(), _CAPTURE, None)
        else:
            self._scope = _replay_scope(self._replay_session_id)
        return None

    def _fetcher(self) -> tuple[ReplayCassette, Transport] | None:
        """For a new replay scope given a client or transport: its cassette and who fetches it."""
        cassette = self._scope.cassette
        sender = self._transport
        if sender is None and self._client is not None:
            sender = self._client._transport
        return (cassette, sender) if cassette is not None and sender is not None else None

    def _activate(self) -> TraceScope:
        self._token = _ACTIVE.set(self._scope)
        return self._scope

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        token = self._token
        if token is None:
            return  # joined an outer scope: its owner resets and checks
        self._token = None
        _ACTIVE.reset(token)
        cassette = self._scope.cassette
        if cassette is not None and exc_type is None:
            cassette.check_leftovers()


class _SyncScopeBlock(_ScopeBlock):
    """The sync twin of `trace_scope` (same arguments, same scope object).

    An async client's transport cannot fetch here; the first call in the
    scope then fetches the session instead.
    """

    __slots__ = ()

    def __enter__(self) -> TraceScope:
        joined = self._open()
        if joined is not None:
            return joined
        if self._scope.cassette is not None and (fetch := self._fetcher()) is not None:
            cassette, sender = fetch
            if not inspect.iscoroutinefunction(sender.send):
                response = sender.send(session_spec(cassette.session_id))
                cassette.load(parse_session(cast("RawResponse", response)))
        return self._activate()


class _AsyncScopeBlock(_ScopeBlock):
    """Group every SDK call inside under one session; replay one if asked.

    Use as `async with trace_scope(...) as scope:`. `client=` (or the
    reference's `transport=client._transport`) lets a replay scope fetch its
    session at entry; without it the first call fetches.
    """

    __slots__ = ()

    async def __aenter__(self) -> TraceScope:
        joined = self._open()
        if joined is not None:
            return joined
        if self._scope.cassette is not None and (fetch := self._fetcher()) is not None:
            cassette, sender = fetch
            response = sender.send(session_spec(cassette.session_id))
            if inspect.isawaitable(response):
                response = await response
            cassette.load(parse_session(response))
        return self._activate()

    async def __aexit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        self.__exit__(exc_type, *exc)


# The public names are the classes themselves: calling one builds the block,
# with no function call in between (this runs once per request).
trace_scope = _AsyncScopeBlock
trace_scope_sync = _SyncScopeBlock
replay_scope = trace_scope
replay_scope_sync = trace_scope_sync
