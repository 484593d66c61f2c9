"""`lockhook inbox dead|retry`: inbox entries whose processing kept failing, and putting them back."""

from __future__ import annotations

import json

import typer

from tools.notifications_cli import _redis_errors

inbox_app = typer.Typer(no_args_is_help=True, help="The inbox's dead-letter stream: list and re-process.")


def _client():
    from lockhook.redis_client import sync_client
    from lockhook.settings import get_settings

    return sync_client(get_settings())


@inbox_app.command("dead")
@_redis_errors
def dead(limit: int = typer.Option(100, min=1, help="show at most this many, newest first"),
         as_json: bool = typer.Option(False, "--json", help="one JSON object per line")) -> None:
    """Entries moved out of the inbox after failing again and again (kept whole, with the reason)."""
    from lockhook.ingest.dead_letters import list_dead

    letters = list_dead(_client(), limit)
    if as_json:
        for letter in letters:
            typer.echo(json.dumps(letter.to_json()))
        return
    if not letters:
        typer.echo("no dead-letter entries: every inbox entry was processed or quarantined")
        return
    for letter in letters:
        typer.echo(f"{letter.id}  {letter.endpoint:<12} {letter.delivery_id:<40} {letter.dead_at or '':<24} "
                   f"{letter.reason}")
    typer.echo(f"{len(letters)} entr{'y' if len(letters) == 1 else 'ies'}; `lockhook inbox retry ID` or "
               "`--all` puts them back into the inbox")


@inbox_app.command("retry")
@_redis_errors
def retry(ids: list[str] = typer.Argument(None, help="dead-letter ids (from `lockhook inbox dead`)"),
          all_: bool = typer.Option(False, "--all", help="every dead-letter entry")) -> None:
    """Put entries back into the inbox to be processed again (idempotent per event)."""
    from lockhook.ingest.dead_letters import retry_dead

    if not ids and not all_:
        typer.echo("lockhook inbox retry: give dead-letter ids, or --all", err=True)
        raise typer.Exit(2)
    moved = retry_dead(_client(), None if all_ else ids)
    missing = [] if all_ else sorted(set(ids) - set(moved))
    typer.echo(f"{len(moved)} entr{'y' if len(moved) == 1 else 'ies'} back in the inbox")
    if missing:
        typer.echo(f"not found: {', '.join(missing)}", err=True)
        raise typer.Exit(1)
