"""`Noukai` and `AsyncNoukai`: configuration, flow proxies, and the HTTP pool's lifetime.

Both resolve their settings the same way (`_ClientBase`), own one transport,
and close only an httpx client they created: an `http_client=` supplied by the
caller is left open by `close()` / `aclose()`, which are safe to call twice.
The API key is held by the transport settings and never shown by a repr.
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING

from noukai_core._async_flow import AsyncFlow
from noukai_core._config import (
    FlowIdentifier,
    FlowTarget,
    check_timeout,
    resolve_api_key,
    resolve_base_url,
    resolve_defaults,
    resolve_flow,
)
from noukai_core._constants import DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT
from noukai_core._flow import Flow
from noukai_core._transport._async import AsyncTransport
from noukai_core._transport._common import LogHandler, TransportSettings
from noukai_core._transport._sync import SyncTransport

if TYPE_CHECKING:  # only the transport touches httpx at run time (DESIGN: one door)
    import httpx


class _ClientBase:
    """Settings both clients resolve the same way, all checked at construction.

    A bad key, timeout, retry count, pool size, base URL or org/project pair
    fails here, before any request, so a misconfigured app fails at startup.
    """

    def __init__(
        self,
        api_key: str | None,
        *,
        env: str | None,
        base_url: str | None,
        org: str | None,
        project: str | None,
        timeout: float,
        max_retries: int,
        log_handler: LogHandler | None,
        log_payloads: bool,
        session_id: str | None,
        max_connections: int | None,
    ) -> None:
        key = resolve_api_key(api_key)
        client_timeout = check_timeout(timeout)
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"max_retries must be an int >= 0, not {max_retries!r}")
        if max_connections is not None and (
            isinstance(max_connections, bool)
            or not isinstance(max_connections, int)
            or max_connections < 1
        ):
            raise ValueError(
                f"max_connections must be an int >= 1 or None, not {max_connections!r}"
            )
        self._default_org, self._default_project = resolve_defaults(org, project)
        self._settings = TransportSettings(
            base_url=resolve_base_url(base_url, env),
            api_key=key,
            timeout=client_timeout,
            max_retries=max_retries,
            log_handler=log_handler,
            log_payloads=log_payloads,
            max_connections=max_connections,
        )
        self._session_id = session_id

    @property
    def default_org(self) -> str | None:
        return self._default_org

    @property
    def default_project(self) -> str | None:
        return self._default_project

    @property
    def base_url(self) -> str:
        return self._settings.base_url

    @property
    def session_id(self) -> str | None:
        """The default session id sent when no scope and no explicit id apply."""
        return self._session_id

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(base_url={self.base_url!r}, "
            f"org={self._default_org!r}, project={self._default_project!r})"
        )

    def _flow_target(
        self,
        identifier: FlowIdentifier | None,
        org: str | None,
        project: str | None,
        slug: str | None,
    ) -> FlowTarget:
        return resolve_flow(
            identifier,
            org=org,
            project=project,
            slug=slug,
            default_org=self._default_org,
            default_project=self._default_project,
        )


class Noukai(_ClientBase):
    """The synchronous client. Safe to share across threads."""

    def __init__(
        self,
        api_key: str | None = None,
        *,
        env: str | None = None,
        base_url: str | None = None,
        org: str | None = None,
        project: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        log_handler: LogHandler | None = None,
        log_payloads: bool = False,
        session_id: str | None = None,
        http_client: httpx.Client | None = None,
        max_connections: int | None = DEFAULT_MAX_CONNECTIONS,
    ) -> None:
        super().__init__(
            api_key,
            env=env,
            base_url=base_url,
            org=org,
            project=project,
            timeout=timeout,
            max_retries=max_retries,
            log_handler=log_handler,
            log_payloads=log_payloads,
            session_id=session_id,
            max_connections=max_connections,
        )
        self._transport = SyncTransport(self._settings, http_client)

    def flow(
        self,
        identifier: FlowIdentifier | None = None,
        *,
        org: str | None = None,
        project: str | None = None,
        slug: str | None = None,
    ) -> Flow:
        """A proxy for one flow: "slug", "org/project/slug", a dict, or keywords."""
        return Flow(
            self._transport,
            self._flow_target(identifier, org, project, slug),
            default_session_id=self._session_id,
        )

    def close(self) -> None:
        """Release the connection pool (unless it was supplied). Idempotent."""
        self._transport.close()

    def __enter__(self) -> Noukai:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncNoukai(_ClientBase):
    """The asyncio client; `flow()` is a plain method returning `AsyncFlow`."""

    def __init__(
        self,
        api_key: str | None = None,
        *,
        env: str | None = None,
        base_url: str | None = None,
        org: str | None = None,
        project: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        log_handler: LogHandler | None = None,
        log_payloads: bool = False,
        session_id: str | None = None,
        http_client: httpx.AsyncClient | None = None,
        max_connections: int | None = DEFAULT_MAX_CONNECTIONS,
    ) -> None:
        super().__init__(
            api_key,
            env=env,
            base_url=base_url,
            org=org,
            project=project,
            timeout=timeout,
            max_retries=max_retries,
            log_handler=log_handler,
            log_payloads=log_payloads,
            session_id=session_id,
            max_connections=max_connections,
        )
        self._transport = AsyncTransport(self._settings, http_client)

    def flow(
        self,
        identifier: FlowIdentifier | None = None,
        *,
        org: str | None = None,
        project: str | None = None,
        slug: str | None = None,
    ) -> AsyncFlow:
        """A proxy for one flow: "slug", "org/project/slug", a dict, or keywords."""
        return AsyncFlow(
            self._transport,
            self._flow_target(identifier, org, project, slug),
            default_session_id=self._session_id,
        )

    async def aclose(self) -> None:
        """Release the connection pool (unless it was supplied). Idempotent."""
        await self._transport.aclose()

    async def __aenter__(self) -> AsyncNoukai:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
