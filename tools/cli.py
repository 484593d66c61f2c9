"""The `lockhook` command line: serve, worker, dev, replay, sign, reprocess, simulate, notifications."""

from __future__ import annotations

import os
import sys

import typer

from lockhook.settings import get_settings
from tools.inbox_cli import inbox_app
from tools.notifications_cli import notifications_app
from tools.reconcile_cli import reconcile

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


def _fail(exc: Exception) -> None:
    typer.echo(f"lockhook: {exc}", err=True)
    raise typer.Exit(2)


@app.command()
def dev() -> None:
    """Run web + worker together (honcho on the Procfile), with an embedded Redis when none answers."""
    from lockhook.errors import ConfigError
    from tools.devserver import run

    try:
        code = run(get_settings())
    except ConfigError as exc:
        _fail(exc)
    raise typer.Exit(code)


def _secret_or_settings(secret: str | None, endpoint: str) -> str:
    found = [secret] if secret else get_settings().webhook_secrets(endpoint)
    if not found:
        _fail(ValueError("--secret is required (or set SEAM_WEBHOOK_SECRET)"))
    return found[0]


@app.command()
def replay(paths: list[str] = typer.Argument(..., help="fixture files, JSONL files or folders"),
           url: str = typer.Option(..., help="receiver base URL, e.g. http://127.0.0.1:8000"),
           secret: str = typer.Option(None, help="whsec_... to sign with (default: SEAM_WEBHOOK_SECRET)"),
           device_cloud_secret: str = typer.Option(
               None, help="for device-cloud deliveries (default: DEVICE_CLOUD_WEBHOOK_SECRET, then --secret)"),
           rate: float = typer.Option(None, min=0.001, help="deliveries per second (default: as fast as answered)"),
           new_ids: bool = typer.Option(False, "--new-ids", help="give every delivery a fresh id")) -> None:
    """Re-sign recorded deliveries with fresh timestamps and post them; exit 1 if any was rejected."""
    from lockhook.errors import ConfigError
    from tools.replay import run_replay

    settings = get_settings()
    seam = [_secret_or_settings(secret, "seam")]
    # the device-cloud endpoint may have its own secret: the flag, else its env secret, else --secret
    cloud = [device_cloud_secret] if device_cloud_secret else settings.webhook_secrets("device-cloud")[:1] + seam
    if not secret:
        seam += settings.webhook_secrets("device-cloud")[:1]
    try:
        code = run_replay(paths, url, {"seam": list(dict.fromkeys(seam)), "device-cloud": list(dict.fromkeys(cloud))},
                          rate, new_ids)
    except (ConfigError, OSError, ValueError) as exc:
        _fail(exc)
    raise typer.Exit(code)


@app.command()
def sign(file: str = typer.Argument(..., help="a fixture (its body and id are used) or a raw body file"),
         secret: str = typer.Option(..., help="whsec_... secret"),
         delivery_id: str = typer.Option(None, "--id", help="delivery id (default: the fixture's, or a new one)"),
         timestamp: int = typer.Option(None, help="unix seconds (default: now)"),
         prefix: str = typer.Option(None, help="header prefix: svix or webhook")) -> None:
    """Print the three signature headers for a body, curl-ready (`-H 'svix-id: ...'`)."""
    from tools.replay import curl_lines, sign_file

    try:
        headers, _ = sign_file(file, secret, delivery_id, timestamp, prefix)
    except Exception as exc:  # unreadable file or unusable secret: one line, never the secret
        _fail(ValueError(f"cannot sign {file}: {type(exc).__name__}"))
    typer.echo(curl_lines(headers))


@app.command()
def reprocess(since: str = typer.Option(..., help="15m, 2h, 1d ago; or ISO 8601 time, epoch, stream id"),
              until: str = typer.Option(None, help="same formats (default: now)"),
              endpoint: str = typer.Option(None, help="only deliveries of this endpoint (seam, device-cloud)")) -> None:
    """Re-apply stored deliveries past the event dedupe (after a bug fix); resolved commands stay resolved."""
    from lockhook.errors import ConfigError
    from lockhook.redis_client import sync_client
    from tools.reprocess import parse_since
    from tools.reprocess import reprocess as run_reprocess

    try:
        since_ms = parse_since(since)
        until_ms = parse_since(until) if until else None
    except ConfigError as exc:
        _fail(exc)
    client = sync_client(get_settings())
    report = run_reprocess(client, since_ms, until_ms, endpoint)
    typer.echo(f"reprocessed {report.applied} deliveries ({report.read} read, {report.skipped} not events)")


@app.command()
def simulate(host: str = typer.Option("127.0.0.1"), port: int = typer.Option(8090),
             receiver_url: str = typer.Option("http://127.0.0.1:8000", help="where to post the webhooks"),
             secret: str = typer.Option(None, help="signs device-cloud webhooks (default: its env secret)"),
             seam_secret: str = typer.Option(None, help="signs Seam webhooks (default: SEAM_WEBHOOK_SECRET)"),
             delay: float = typer.Option(0.5, min=0, help="seconds before the completion webhook"),
             delay_max: float = typer.Option(None, min=0, help="random delay up to this (default: --delay)"),
             failure_rate: float = typer.Option(0.0, min=0, max=1, help="share that fail (jammed* ids: all)"),
             failure_code: str = typer.Option("LOCK_JAMMED", help="error_code of failed actions"),
             offline: list[str] = typer.Option(None, help="DEVICE_OFFLINE lock ids (repeatable; offline* ids too)"),
             duplicate_rate: float = typer.Option(0.0, min=0, max=1, help="share of webhooks sent twice"),
             api_key: str = typer.Option(None, help="require this key (Bearer or X-API-Key)"),
             seed: int = typer.Option(None, help="random seed for repeatable runs")) -> None:
    """Run a local device cloud (and Seam stand-in) that confirms actions by signed webhooks."""
    from tools.simulator import SimulatorConfig, serve

    settings = get_settings()
    cloud = secret or (settings.webhook_secrets("device-cloud") or settings.webhook_secrets("seam") or [None])[0]
    seam = seam_secret or (settings.webhook_secrets("seam") or [cloud])[0]
    if not cloud:
        _fail(ValueError("--secret is required (or set DEVICE_CLOUD_WEBHOOK_SECRET)"))
    config = SimulatorConfig(receiver_url=receiver_url, secret=cloud, seam_secret=seam, delay_s=delay,
                             delay_max_s=delay_max, failure_rate=failure_rate, failure_code=failure_code,
                             offline=frozenset(offline or ()), duplicate_rate=duplicate_rate, api_key=api_key,
                             seed=seed)
    typer.echo(f"simulator on http://{host}:{port} -> webhooks to {receiver_url}")
    serve(config, host, port)


@app.command()
def demo(commands: int = typer.Option(12, min=1, max=200, help="how many commands to issue")) -> None:
    """Run everything (embedded Redis, web, worker, simulator), issue commands, print the outcomes."""
    from lockhook.errors import ConfigError
    from tools.demo import run as run_demo

    try:
        code = run_demo(commands)
    except ConfigError as exc:
        _fail(exc)
    raise typer.Exit(code)


app.add_typer(notifications_app, name="notifications")
app.add_typer(inbox_app, name="inbox")
app.command()(reconcile)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
