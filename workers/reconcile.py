"""The periodic Seam reconcile: every RECONCILE_EVERY_S, one worker in the cluster backfills missed events."""

from __future__ import annotations

import logging
import threading

from lockhook import keys
from lockhook.commands.issuing import seam_client
from lockhook.ingest.reconcile import reconcile, refresh_locks
from lockhook.streams import consumer_name

log = logging.getLogger("lockhook.reconcile")

_running = threading.Lock()


def maybe_reconcile(client, settings) -> bool:
    """Start a reconcile in a thread when this process wins the cluster-wide slot; True when one started.

    The slot is a key that lives RECONCILE_EVERY_S: whoever sets it runs, the others wait for it to expire.
    A slow Seam API never holds up the maintenance round that calls this.
    """
    if settings.seam_api_key is None or settings.reconcile_every_s <= 0 or _running.locked():
        return False
    if not client.set(keys.RECONCILE_LOCK, consumer_name(), nx=True, ex=max(1, int(settings.reconcile_every_s))):
        return False
    threading.Thread(target=_run, args=(client, settings), name="lockhook-reconcile", daemon=True).start()
    return True


def _run(client, settings) -> None:
    with _running:
        try:
            seam = seam_client(settings)
            try:
                result = reconcile(client, seam, settings.dedupe_ttl_seconds)
                refresh_locks(client, seam, settings.device_retention_s, result)
            finally:
                seam.client.close()
        except Exception as exc:  # Seam down, a bad key: the next slot tries again
            log.warning("periodic reconcile failed: %s", type(exc).__name__)
            return
        if result.stored or result.locks_corrected:
            log.info("reconcile stored %d missed event(s) of %d listed; corrected %d lock state(s) from Seam",
                     result.stored, result.listed, result.locks_corrected)
