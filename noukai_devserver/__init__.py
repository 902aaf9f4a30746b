"""noukai_devserver: a local server that speaks the Noukai HTTP API.

This package's `__init__` stays import-light (standard library only): the
pytest plugin in `noukai_devserver.pytest_plugin` is loaded by every pytest run
of every project that installs `noukai`, and importing it imports this module.
The server itself (FastAPI, uvicorn, PyYAML) needs the `devserver` extra.
"""

__all__: list[str] = []
