"""The `lockhook` command line: serve, worker, dev, replay, sign, reprocess, simulate, notifications."""

from __future__ import annotations

import os
import sys

import typer

from lockhook.notifications_cli import notifications_app
from lockhook.settings import get_settings

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)


@app.command()
def serve(host: str = typer.Option("0.0.0.0", help="interface to bind"),
          port: int = typer.Option(None, help="port (default: $PORT or 8000)")) -> None:
    """Run the web process (the Procfile's `web`)."""
    import uvicorn

    settings = get_settings()
    uvicorn.run("receiver.app:create_app", factory=True, host=host, port=port or settings.port,
                access_log=False, timeout_graceful_shutdown=20)


@app.command()
def worker(queues: list[str] = typer.Option(None, "--queue", "-q", help="only these queues"),
           burst: bool = typer.Option(False, help="exit when the queues are empty")) -> None:
    """Run the RQ workers (the Procfile's `worker`), with the scheduler."""
    from workers.worker import run

    run(get_settings(), queues=queues or None, burst=burst)


app.add_typer(notifications_app, name="notifications")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
