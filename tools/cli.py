"""The `lockhook` CLI: serve, worker, dev, replay, sign, reprocess, reconcile, simulate, notifications, seam."""

from __future__ import annotations

import os
import sys

import typer

from lockhook.settings import get_settings
from tools.cli_messages import base_url, explain, say
from tools.inbox_cli import inbox_app
from tools.notifications_cli import notifications_app
from tools.reconcile_cli import reconcile

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__, pretty_exceptions_enable=False)
ENDPOINT_HELP = "seam or device-cloud"


@app.command()
def serve(host: str = typer.Option("0.0.0.0", help="interface to bind"),
          port: int = typer.Option(None, help="port (default: $PORT or 8000)")) -> None:
    """Run the web process (the Procfile's `web`)."""
    import uvicorn

    settings = get_settings()
    uvicorn.run("receiver.app:create_app", factory=True, host=host, port=port or settings.port,
                http="receiver.http_protocol:BoundedHeadProtocol", access_log=False, timeout_graceful_shutdown=20)


@app.command()
def worker(queues: list[str] = typer.Option(None, "--queue", "-q", help="only these queues"),
           burst: bool = typer.Option(False, help="exit when the queues are empty")) -> None:
    """Run the RQ workers (the Procfile's `worker`), with the scheduler."""
    from workers.worker import run

    run(get_settings(), queues=queues or None, burst=burst)


def _fail(exc: Exception) -> None:
    say(str(exc) if type(exc) is ValueError else explain(exc))
    raise typer.Exit(2)


@app.command()
def dev() -> None:
    """Run web + worker (honcho on the Procfile); what is not configured (Redis, secrets, remotes) runs locally."""
    from lockhook.errors import ConfigError
    from tools.devserver import run

    try:
        code = run(get_settings())
    except ConfigError as exc:
        _fail(exc)
    raise typer.Exit(code)


def endpoint_secrets(endpoint: str) -> list[str]:
    """The endpoint's secrets from the environment, else the ones `make run` generated (.lockhook/dev.env)."""
    from tools.devserver import DEV_DIR, DEV_ENV, load_dev_env

    found = get_settings().webhook_secrets(endpoint)
    if found:
        return found
    dev = load_dev_env(DEV_DIR / DEV_ENV).get("SEAM_WEBHOOK_SECRET")  # `make run` signs both endpoints with it
    if dev:
        say(f"signing {endpoint} deliveries with the secret `make run` generated ({DEV_DIR / DEV_ENV})")
        return [dev]
    return []


def _env_name(endpoint: str) -> str:
    return "SEAM_WEBHOOK_SECRET" if endpoint == "seam" else "DEVICE_CLOUD_WEBHOOK_SECRET"


def _check_endpoint(endpoint: str | None) -> None:
    from tools.replay import ENDPOINTS

    if endpoint is not None and endpoint not in ENDPOINTS:
        _fail(ValueError(f"--endpoint {endpoint!r}: use {' or '.join(ENDPOINTS)}"))


@app.command()
def replay(paths: list[str] = typer.Argument(..., help="recorded deliveries or bare event bodies: JSON files, "
                                                       "JSONL files, folders, or what Seam's events.list returns"),
           url: str = typer.Option(None, help="receiver base URL (default: http://127.0.0.1:$PORT)"),
           endpoint: str = typer.Option(None, help=f"where bare event bodies go: {ENDPOINT_HELP}"),
           secret: str = typer.Option(None, help="whsec_... for Seam deliveries (default: SEAM_WEBHOOK_SECRET)"),
           device_cloud_secret: str = typer.Option(
               None, help="for device-cloud deliveries (default: DEVICE_CLOUD_WEBHOOK_SECRET, then --secret)"),
           rate: float = typer.Option(None, min=0.001, help="deliveries per second (default: as fast as answered)"),
           new_ids: bool = typer.Option(False, "--new-ids", help="give every delivery a fresh id")) -> None:
    """Sign deliveries with fresh timestamps and post them; exit 1 if any was rejected."""
    from lockhook.errors import ConfigError
    from tools.replay import run_replay

    _check_endpoint(endpoint)
    target = base_url(url or f"http://127.0.0.1:{get_settings().port}")
    seam = [secret] if secret else endpoint_secrets("seam")[:1]
    env_cloud = endpoint_secrets("device-cloud")[:1]
    # the device-cloud endpoint may have its own secret: the flag, else its env secret, else Seam's
    cloud = [device_cloud_secret] if device_cloud_secret else env_cloud + seam
    if not secret:
        seam += env_cloud  # the receiver tells which one it holds (a 401 stores nothing)
    if not seam and not cloud:
        _fail(ValueError("no secret to sign with: set SEAM_WEBHOOK_SECRET (and DEVICE_CLOUD_WEBHOOK_SECRET) "
                         "to the receiver's, or pass --secret"))
    try:
        secrets = {"seam": list(dict.fromkeys(seam)), "device-cloud": list(dict.fromkeys(cloud))}
        code = run_replay(paths, target, secrets, rate, new_ids, endpoint)
    except (ConfigError, OSError, ValueError) as exc:
        _fail(exc)
    raise typer.Exit(code)


@app.command()
def sign(file: str = typer.Argument(..., help="a recorded delivery (its body and id are used) or a raw body file"),
         secret: str = typer.Option(None, help="whsec_... (default: the endpoint's secret from the environment)"),
         endpoint: str = typer.Option(None, help=f"{ENDPOINT_HELP}: whose secret signs a raw body (default: seam)"),
         delivery_id: str = typer.Option(None, "--id", help="delivery id (default: the fixture's, or a new one)"),
         timestamp: int = typer.Option(None, help="unix seconds (default: now)"),
         prefix: str = typer.Option(None, help="header prefix: svix or webhook")) -> None:
    """Print the three signature headers for a body, curl-ready (`-H 'svix-id: ...'`)."""
    from pathlib import Path

    from tools.replay import curl_lines, endpoint_of, sign_file

    _check_endpoint(endpoint)
    if not Path(file).is_file():
        _fail(ValueError(f"no such file: {file}"))
    target = endpoint or endpoint_of(file) or "seam"
    if not secret:
        found = endpoint_secrets(target)
        if not found:
            _fail(ValueError(f"no secret to sign with: set {_env_name(target)} (as the receiver has it) "
                             "or pass --secret"))
        secret = found[0]
    try:
        headers, _ = sign_file(file, secret, delivery_id, timestamp, prefix)
    except OSError as exc:
        _fail(exc)
    except Exception:  # svix refused the secret: one line, never the secret
        _fail(ValueError(f"cannot sign {file}: the secret is not a whsec_... (base64) secret"))
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
    receiver_url = base_url(receiver_url, "--receiver-url")
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
seam_app = typer.Typer(no_args_is_help=True, help="Seam workspace set-up.")
app.add_typer(seam_app, name="seam")


@seam_app.command("webhook")
def seam_webhook(url: str = typer.Option(None, help="where Seam posts: https://<your lockhook>/webhooks/seam"),
                 events: str = typer.Option(None, help="event types, comma-separated, e.g. "
                                                       "lock.locked,lock.unlocked (default: all)"),
                 list_: bool = typer.Option(False, "--list", help="list the workspace's webhooks"),
                 delete: str = typer.Option(None, "--delete", metavar="ID", help="delete this webhook")) -> None:
    """Create the Seam webhook (SEAM_API_KEY's workspace) and print the secret to set as SEAM_WEBHOOK_SECRET."""
    from tools import seam_webhooks

    if sum((url is not None, list_, delete is not None)) != 1:
        _fail(ValueError("give one of --url URL (create), --list or --delete ID"))
    settings = get_settings()
    if list_:
        webhooks = seam_webhooks.list_all(settings)
        if not webhooks:
            say("no webhooks in this Seam workspace")
        for w in webhooks:
            typer.echo(f"{w['webhook_id']}  {w['url']}  {','.join(w['event_types']) or 'all events'}")
        return
    if delete is not None:
        seam_webhooks.delete(settings, delete)
        say(f"deleted Seam webhook {delete}")
        return
    created = seam_webhooks.create(settings, url, events)
    if created.note:
        say(created.note)
    say(f"created Seam webhook {created.webhook_id} -> {created.url} "
        f"({', '.join(created.event_types) if events else 'all events'})")
    say("set this where lockhook runs (e.g. `heroku config:set SEAM_WEBHOOK_SECRET=...`), then restart it:")
    typer.echo(f"SEAM_WEBHOOK_SECRET={created.secret}")


def main() -> None:
    """The console script: errors become one line saying what happened and what to do (exit 2)."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001  (the top of the CLI: everything is explained, nothing re-raised)
        say(explain(exc))
        sys.exit(2)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
