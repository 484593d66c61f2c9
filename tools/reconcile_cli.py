"""`lockhook reconcile --since 2h|ISO`: backfill Seam events the webhook never delivered, with progress."""

from __future__ import annotations

import typer

from lockhook.clock import iso


def reconcile(since: str = typer.Option(None, help="15m, 2h, 1d ago; or ISO 8601 time, epoch "
                                        "(default: the last run's watermark, less an overlap)")) -> None:
    """List Seam's events (events.list) and put every one through the inbox: missed ones are applied."""
    from lockhook.commands.issuing import seam_client
    from lockhook.errors import LockhookError
    from lockhook.ingest.reconcile import reconcile as run_reconcile
    from lockhook.ingest.reconcile import refresh_locks
    from lockhook.redis_client import sync_client
    from lockhook.settings import get_settings
    from tools.reprocess import parse_since

    settings = get_settings()
    try:
        since_ms = parse_since(since) if since else None
        seam = seam_client(settings)
    except LockhookError as exc:
        typer.echo(f"lockhook reconcile: {exc.message}", err=True)
        raise typer.Exit(2) from None

    def progress(result) -> None:
        typer.echo(f"  page {result.pages}: {result.listed} listed so far, {result.stored} new, "
                   f"{result.duplicate} reconciled before", err=True)

    client = sync_client(settings)
    typer.echo(f"reconciling Seam events since {iso(since_ms) if since_ms else 'the last watermark'} ...", err=True)
    try:
        result = run_reconcile(client, seam, settings.dedupe_ttl_seconds, since_ms, progress=progress)
        refresh_locks(client, seam, settings.device_retention_s, result)
    except Exception as exc:
        typer.echo(f"lockhook reconcile: Seam's events.list failed ({type(exc).__name__}); is SEAM_ENDPOINT "
                   "reachable and SEAM_API_KEY valid?", err=True)
        raise typer.Exit(1) from None
    finally:
        seam.client.close()
    typer.echo(f"{result.listed} events listed since {iso(result.since_ms)}: {result.stored} stored for processing "
               f"(applied unless the webhook brought them already), {result.duplicate} reconciled before"
               + ("" if result.complete else "; stopped at the page limit, run again to go on"))
    typer.echo(f"{result.locks_read} known locks read from Seam (locks.list): {result.locks_corrected} corrected")
