"""noukai_fastapi: Noukai for FastAPI and plain Starlette apps.

The middleware and the SSE passthrough need Starlette only; the dependency
helpers (`get_noukai`, `NoukaiDep`) need FastAPI too.
"""

try:
    import starlette  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "noukai_fastapi needs Starlette (and FastAPI for its dependencies); "
        "install the extra: pip install 'noukai[fastapi]'"
    ) from exc

__all__: list[str] = []
