"""The `trace` decorator (and its alias `replay`): a function run inside a session scope.

It opens (or joins) the scope of `_scope` around each call. The invariant it
keeps for every kind of function: the scope is active for exactly as long as
the function's own code runs. For a plain or async function that is the call;
for a generator function (sync or async, e.g. a streamed response body) it is
the whole iteration, which happens after the view that returned it is over.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator
from typing import TYPE_CHECKING, Any, TypeVar, cast, overload

from noukai_core._scope import trace_scope, trace_scope_sync

if TYPE_CHECKING:
    from noukai_core._client import AsyncNoukai, Noukai

F = TypeVar("F", bound=Callable[..., Any])


@overload
def trace(func: F, /) -> F: ...
@overload
def trace(*, client: Noukai | AsyncNoukai | None = None) -> Callable[[F], F]: ...
def trace(
    func: F | None = None, /, *, client: Noukai | AsyncNoukai | None = None
) -> F | Callable[[F], F]:
    """Run the decorated function (sync or async) inside a session scope.

    Use as `@trace` or `@trace(client=...)`. Under an active scope (a
    middleware's) it joins it instead of opening a second one. A generator
    function keeps its scope for as long as it is iterated.
    """

    def decorate(fn: F) -> F:
        if inspect.isasyncgenfunction(fn):
            return cast(F, _traced_async_generator(fn, client))
        if inspect.isgeneratorfunction(fn):
            return cast(F, _traced_generator(fn, client))
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                async with trace_scope(client=client):
                    return await cast(Callable[..., Awaitable[Any]], fn)(*args, **kwargs)

            return cast(F, async_wrapper)

        @functools.wraps(fn)
        def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
            with trace_scope_sync(client=client):
                return fn(*args, **kwargs)

        return cast(F, sync_wrapper)

    return decorate(func) if func is not None else decorate


def _traced_async_generator(
    fn: Callable[..., AsyncGenerator[Any, Any]], client: Noukai | AsyncNoukai | None
) -> Callable[..., AsyncGenerator[Any, Any]]:
    # Frameworks iterate an async body in one task, so the scope is set and
    # reset in that task's context, around the whole iteration.
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
        async with trace_scope(client=client):
            inner = fn(*args, **kwargs)
            try:
                async for item in inner:
                    yield item
            finally:
                await inner.aclose()

    return wrapper


def _traced_generator(
    fn: Callable[..., Generator[Any, Any, Any]], client: Noukai | AsyncNoukai | None
) -> Callable[..., Generator[Any, Any, Any]]:
    # A sync body may be advanced from a different thread (and so a different
    # copy of the context) at every step, as Starlette does. Each step runs in
    # one context of its own instead, so the scope is set and reset in the
    # same context and never leaks into the caller's between steps.
    def scoped(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
        with trace_scope_sync(client=client):
            return (yield from fn(*args, **kwargs))

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
        context = contextvars.copy_context()
        steps = scoped(*args, **kwargs)
        sent: Any = None
        thrown: BaseException | None = None
        while True:
            try:
                if thrown is None:
                    item = context.run(steps.send, sent)
                else:
                    item, thrown = context.run(steps.throw, thrown), None
            except StopIteration as stop:
                return stop.value
            try:
                sent = yield item
            except GeneratorExit:
                context.run(steps.close)
                raise
            except BaseException as exc:
                thrown = exc

    return wrapper


replay = trace
