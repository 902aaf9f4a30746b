"""noukai_devserver: a local server that speaks the Noukai HTTP API.

This package's `__init__` stays import-light (standard library only): the
pytest plugin in `noukai_devserver.pytest_plugin` is loaded by every pytest run
of every project that installs `noukai`, and importing it imports this module.
The server itself (FastAPI, uvicorn, PyYAML, typer) needs the `devserver` extra.

How a request flows, module by module:

    _server / _cli      sockets (both loopback families), uvicorn, shutdown, CLI
    _middleware         request ids, one access-log line, last-resort 500
    _app                shared state, error envelope for every error, lifespan
    _auth               key -> org, rate limits, org/project visibility
    _resolver           version routing; draft files hot-reloaded
    _requests           body reading, type checks, chat/tool-turn normalisation
    _idempotency        Idempotency-Key outcomes
    _routes_flows       E1-E4: execute, step, jobs
    _driver             one HTTP call's worth of a run; the run's lifecycle state
    _engine / _blocks   blocks as async generators of events; attempts and snapshots
    _models / _provider deterministic local models; optional OpenAI-compatible one
    _runs / _capture    run state, event log + live fan-out, balances; capture modes
    _streams / _sse     /step and live-trace SSE responses; framing
    _routes_runs        E5-E9: summaries, traces, live trace, sessions
    _jobs               the bounded job worker pool
    _store              SQLite: one connection on one writer thread, WAL
    _workspace / _flows workspace and flow files, validated with file/field errors
"""

__all__: list[str] = []
