"""`lockhook notifications failed|retry`: see notifications that exhausted their attempts and send them again."""

from __future__ import annotations

import functools
import json

import typer

notifications_app = typer.Typer(no_args_is_help=True, help="Failed notifications: list and re-send.")


def _store():
    from lockhook.notifications.store import NotificationStore
    from lockhook.redis_client import sync_client
    from lockhook.settings import get_settings

    return NotificationStore(sync_client(get_settings()))


def _redis_errors(fn):
    """An unreachable Redis is one line on stderr and exit code 3, not a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from redis.exceptions import RedisError

        try:
            return fn(*args, **kwargs)
        except RedisError as exc:
            from tools.cli_messages import explain, say

            say(explain(exc))
            raise typer.Exit(3) from None

    return wrapper


@notifications_app.command("failed")
@_redis_errors
def failed(limit: int = typer.Option(100, min=1, help="show at most this many, newest first"),
           as_json: bool = typer.Option(False, "--json", help="one JSON object per line")) -> None:
    """List notifications that failed after their last attempt, with the last error."""
    found = _store().failed(limit)
    if as_json:
        for item in found:
            typer.echo(json.dumps(item.public()))
        return
    if not found:
        typer.echo("no failed notifications")
        return
    for n in found:
        typer.echo(f"{n.id}  {n.outcome:<20} {n.label:<32} attempts={n.attempts} round={n.round} "
                   f"failed_at={n.failed_at} command={n.command_id or '-'} device={n.device_id or '-'} "
                   f"last_error={n.last_error or '-'}")


@notifications_app.command("retry")
@_redis_errors
def retry(notification_id: str = typer.Argument(None, metavar="ID", help="a notification id from `failed`"),
          all_: bool = typer.Option(False, "--all", help="re-send every failed notification")) -> None:
    """Queue failed notifications again: same id and body, a fresh round of attempts (a worker sends them)."""
    if bool(notification_id) == all_:
        typer.echo("lockhook: give one notification ID or --all", err=True)
        raise typer.Exit(2)
    store = _store()
    if all_:
        ids = store.retry_all()
        typer.echo(f"queued {len(ids)} notification(s) again")
        for nid in ids:
            typer.echo(nid)
        return
    if not store.retry(notification_id):
        typer.echo(f"lockhook: {notification_id} is not a failed notification", err=True)
        raise typer.Exit(1)
    typer.echo(f"queued {notification_id} again")
