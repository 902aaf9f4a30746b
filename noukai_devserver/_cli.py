"""The `noukai-dev` command line (typer).

`noukai-dev [OPTIONS]` serves; `noukai-dev publish ORG/PROJECT/SLUG`
stores the flow file as the next immutable numbered version and makes it
production. Workspace errors print one line naming file, field and problem,
and exit with status 2.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from ._flows import WorkspaceError
from ._workspace import DEMO_WORKSPACE, Workspace, load_workspace

app = typer.Typer(add_completion=False, no_args_is_help=False,
                  help="Local server for the Noukai HTTP API. Without a command it serves, "
                       "with the options below; `publish` stores a flow version.")

WorkspaceOpt = Annotated[Optional[Path], typer.Option(  # noqa: UP045 - typer needs Optional
    "--workspace", help="Workspace directory (default: the built-in demo workspace).")]
DbOpt = Annotated[Optional[str], typer.Option(  # noqa: UP045
    "--db", help="SQLite file or ':memory:' (default: WORKSPACE/noukai.sqlite3, or "
                 "./.noukai-dev/demo.sqlite3 for the demo).")]


def _db_for(workspace: Path | None, db: str | None) -> str:
    if db:
        return db
    if workspace is None:
        return str(Path(".noukai-dev") / "demo.sqlite3")
    return str(workspace / "noukai.sqlite3")


def _load(workspace: Path | None) -> Workspace:
    try:
        return load_workspace(workspace or DEMO_WORKSPACE)
    except WorkspaceError as exc:
        typer.echo(f"noukai-dev: invalid workspace: {exc}", err=True)
        raise typer.Exit(2) from None


@app.callback(invoke_without_command=True)
def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="'localhost' binds 127.0.0.1 and ::1.")] = "localhost",
    port: Annotated[int, typer.Option(help="0 picks a free port.")] = 8080,
    workspace: WorkspaceOpt = None,
    db: DbOpt = None,
    heartbeat: Annotated[float, typer.Option(help="SSE heartbeat interval, s.")] = 5.0,
    job_min_latency: Annotated[float, typer.Option(
        help="A job stays non-terminal at least this long, s.")] = 1.0,
    slow_seconds: Annotated[float, typer.Option(
        help="Duration of each block of the slow flow, s.")] = 2.0,
    rate_limit_window: Annotated[float, typer.Option(help="Rate-limit window, s.")] = 60.0,
    session_retention: Annotated[Optional[float], typer.Option(  # noqa: UP045
        help="Sessions older than this are 410, s (default: workspace or never).")] = None,
    job_workers: Annotated[int, typer.Option(help="Concurrent jobs.")] = 4,
    stream_delay: Annotated[float, typer.Option(
        help="Pause between streamed output chunks, s.")] = 0.05,
    live_idle_timeout: Annotated[float, typer.Option(
        help="Live trace of an idle step run closes after this, s.")] = 600.0,
    max_body_bytes: Annotated[int, typer.Option(help="Larger bodies get 413.")] = 4194304,
    snapshot_limit: Annotated[int, typer.Option(
        help="Snapshots larger than this many bytes are truncated.")] = 262144,
    openai_base_url: Annotated[Optional[str], typer.Option(  # noqa: UP045
        envvar="NOUKAI_DEV_OPENAI_BASE_URL",
        help="OpenAI-compatible endpoint for 'openai/<model>' blocks (optional).")] = None,
    reload_interval: Annotated[float, typer.Option(
        help="Flow files and published versions are re-checked this often, s.")] = 0.5,
    idle_runs_in_memory: Annotated[int, typer.Option(
        help="Runs waiting for their client (between steps, at a tool pause) kept in "
             "memory; older ones are reloaded from the database when continued.")] = 256,
    log_level: Annotated[str, typer.Option(help="debug, info, warning, error.")] = "info",
) -> None:
    """Serve the Noukai HTTP API (without a command); `publish` publishes a flow version."""
    if ctx.invoked_subcommand is not None:
        return
    from ._app import ServerOptions
    from ._server import serve as run_server

    ws = _load(workspace)
    options = ServerOptions(
        heartbeat=heartbeat, job_min_latency=job_min_latency, slow_seconds=slow_seconds,
        rate_limit_window=rate_limit_window, session_retention=session_retention,
        job_workers=job_workers, stream_delay=stream_delay,
        live_idle_timeout=live_idle_timeout, max_body_bytes=max_body_bytes,
        snapshot_limit=snapshot_limit, openai_base_url=openai_base_url,
        reload_interval=reload_interval, idle_runs_in_memory=idle_runs_in_memory)
    try:
        run_server(ws, _db_for(workspace, db), host, port, options, log_level=log_level,
                   show_keys=workspace is None)
    except OSError as exc:
        typer.echo(f"noukai-dev: cannot listen on {host}:{port}: {exc.strerror}", err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        pass


@app.command()
def publish(
    target: Annotated[str, typer.Argument(help="ORG/PROJECT/SLUG")],
    workspace: WorkspaceOpt = None,
    db: DbOpt = None,
) -> None:
    """Store the flow file as the next numbered version and make it production."""
    from . import _store as store_db
    from ._runs import utc_now

    parts = target.split("/")
    if len(parts) != 3 or not all(parts):
        typer.echo("noukai-dev publish: expected ORG/PROJECT/SLUG", err=True)
        raise typer.Exit(2)
    org, project, slug = parts
    ws = _load(workspace)
    flow = ws.flow(org, project, slug)
    if flow is None:
        typer.echo(f"noukai-dev publish: no flow file for {target} in {ws.root}", err=True)
        raise typer.Exit(1)
    path = _db_for(workspace, db)
    if path == ":memory:":
        typer.echo("noukai-dev publish: needs a database file, not :memory:", err=True)
        raise typer.Exit(2)
    conn = store_db.connect(path)
    try:
        number = store_db.publish_version(conn, org, project, slug, flow.raw, utc_now())
    finally:
        conn.close()
    typer.echo(f"published {target} as version {number} (now production)")


def main() -> None:
    """Console-script entry point."""
    app(prog_name="noukai-dev")


if __name__ == "__main__":  # pragma: no cover
    main()
    sys.exit(0)
