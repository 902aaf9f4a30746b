"""noukai_django: Noukai for Django projects (add "noukai_django" to INSTALLED_APPS)."""

try:
    import django  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "noukai_django needs Django; install the extra: pip install 'noukai[django]'"
    ) from exc

__all__: list[str] = []
