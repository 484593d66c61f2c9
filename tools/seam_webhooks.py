"""`lockhook seam webhook`: create, list and delete the Seam webhook that posts to /webhooks/seam (official SDK)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from lockhook.commands.issuing import IssuerNotConfigured, seam_client
from lockhook.errors import ConfigError
from lockhook.settings import Settings

WEBHOOK_PATH = "/webhooks/seam"
SEAM_API = "https://connect.getseam.com"


@dataclass
class Created:
    webhook_id: str
    url: str
    event_types: list[str]
    secret: str
    note: str = ""


def receiver_url(url: str) -> tuple[str, str]:
    """The URL Seam must post to, and a note when it was completed ("https://app.example" -> .../webhooks/seam)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"--url {url!r} is not an absolute URL: give where lockhook runs, "
                          f"e.g. https://lockhook.example.com{WEBHOOK_PATH}")
    if parts.path.rstrip("/") == "":
        full = urlunsplit((parts.scheme, parts.netloc, WEBHOOK_PATH, "", ""))
        return full, f"using {full} (lockhook receives Seam events at {WEBHOOK_PATH})"
    note = "" if parts.path.rstrip("/").endswith(WEBHOOK_PATH) else \
        f"note: lockhook receives Seam events at {WEBHOOK_PATH}; {parts.path} will answer 404"
    return url.strip(), note


def split_events(raw: str | None) -> list[str] | None:
    events = [part.strip() for part in (raw or "").split(",") if part.strip()]
    return events or None


def _client(settings: Settings):
    try:
        return seam_client(settings)
    except IssuerNotConfigured:
        raise ConfigError("SEAM_API_KEY is not set (or not a Seam API key): set it to your workspace's key "
                          "(Seam console > API keys)") from None


def _seam_call(settings: Settings, call):
    """Run an SDK call; Seam's and the network's errors become one clear line (never the API key)."""
    import httpx
    from seam import SeamHttpApiError, SeamHttpUnauthorizedError

    where = settings.seam_endpoint or SEAM_API
    seam = _client(settings)
    try:
        return call(seam)
    except SeamHttpUnauthorizedError:
        raise ConfigError(f"Seam ({where}) refused SEAM_API_KEY: check the key and its workspace") from None
    except SeamHttpApiError as exc:
        raise ConfigError(f"Seam ({where}) answered {exc.status_code} {exc.code}: {exc}") from None
    except httpx.TransportError as exc:
        raise ConfigError(f"cannot reach Seam at {where} ({type(exc).__name__}): check the network"
                          + (" and SEAM_ENDPOINT" if settings.seam_endpoint else "")) from None


def create(settings: Settings, url: str, events: str | None) -> Created:
    target, note = receiver_url(url)
    webhook = _seam_call(settings, lambda seam: seam.webhooks.create(url=target, event_types=split_events(events)))
    return Created(webhook.webhook_id, webhook.url, list(webhook.event_types or []), webhook.secret, note)


def list_all(settings: Settings) -> list[dict]:
    """Every webhook of the workspace, without secrets."""
    webhooks = _seam_call(settings, lambda seam: seam.webhooks.list())
    return [{"webhook_id": w.webhook_id, "url": w.url, "event_types": list(w.event_types or [])} for w in webhooks]


def delete(settings: Settings, webhook_id: str) -> None:
    _seam_call(settings, lambda seam: seam.webhooks.delete(webhook_id=webhook_id))
