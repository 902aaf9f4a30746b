"""noukai_flask: Noukai for Flask apps."""

try:
    import flask  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "noukai_flask needs Flask; install the extra: pip install 'noukai[flask]'"
    ) from exc

__all__: list[str] = []
