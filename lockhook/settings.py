"""The one place configuration is read: environment variables into a pydantic-settings class."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from lockhook import defaults
from lockhook.errors import ConfigError


def split_secrets(raw: str | None) -> list[str]:
    """Split a comma- or space-separated list of secrets (rotation keeps old and new)."""
    return [part for part in re.split(r"[\s,]+", raw or "") if part]


class Settings(BaseSettings):
    """Every environment variable lockhook reads; nothing else reads the environment.

    Notification targets and their event filters:
    - NOTIFY_WEBHOOK_URL: one or more URLs, separated by spaces or by commas (a comma followed by `http`).
      An entry may end with `#events=PATTERNS` to receive only those types, e.g.
      `https://a.example/h#events=command.*,lock.state_changed https://b.example/h`; the fragment is never sent.
    - NOTIFY_EVENTS: comma-separated glob patterns over notification types (`command.succeeded`,
      `command.failed`, `command.timed_out`, `command.rejected`, `command.late_result`, `lock.state_changed`,
      `lock.unlocked_without_command`, `lock.left_unlocked`, `device.connected`, `device.disconnected`,
      `device.low_battery`, `device.battery_status_changed`)
      for Slack and for every webhook entry without its own `#events=`; default: all.
    - A command's `callback_url` receives that command's own `command.*` outcomes, unfiltered.
    """

    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)

    redis_url: str = "redis://127.0.0.1:6379/0"
    # rediss:// only: "require" verifies the server's certificate (against REDIS_CA_CERT when set, else the
    # system's CAs); "none" encrypts without verifying (Heroku Redis: self-signed certificates, no CA given)
    redis_tls_verify: Literal["require", "none"] = "require"
    redis_ca_cert: str | None = None  # the CA (or self-signed server) certificate: PEM text or a PEM file's path
    port: int = 8000
    seam_webhook_secret: SecretStr | None = None
    device_cloud_webhook_secret: SecretStr | None = None
    max_body_bytes: int = Field(262_144, gt=0)
    max_header_bytes: int = Field(65_536, ge=4096)  # a request head (request line + headers) larger than this: 431
    header_read_timeout_s: float = Field(20.0, gt=0, le=60)  # a head not complete this long after it began: closed
    dedupe_ttl_seconds: int = Field(7 * 24 * 3600, gt=0)
    access_denied_alert_count: int = Field(3, ge=1)  # denials on one lock within 10 min -> access_denied_repeatedly
    device_retention_days: float = Field(90, gt=0)  # a silent device's lock state and event log expire after this
    inbox_retention_s: int = Field(24 * 3600, gt=0)  # processed raw bodies are kept this long (reprocess's reach)

    lockhook_api_token: SecretStr | None = None

    seam_api_key: SecretStr | None = None
    seam_endpoint: str | None = None
    seam_poll_after_s: float = Field(10.0, ge=0)
    reconcile_every_s: float = Field(300.0, ge=0)  # periodic events.list backfill when SEAM_API_KEY is set; 0 = off

    device_cloud_url: str | None = None
    device_cloud_api_key: SecretStr | None = None
    device_cloud_timeout_s: float = Field(5.0, gt=0)
    device_cloud_attempts: int = Field(2, ge=1, le=5)

    notify_webhook_url: str | None = None
    notify_events: str | None = None
    notify_webhook_secret: SecretStr | None = None
    slack_webhook_url: SecretStr | None = None
    notify_allowed_hosts: str | None = None
    notify_max_attempts: int = Field(8, ge=1)
    notify_timeout_s: float = Field(10.0, gt=0)
    notify_retry_delays_s: str | None = None  # comma-separated seconds between attempts (tests shorten them)

    trusted_proxy_hops: int = Field(0, ge=0, le=5)  # proxies in front that append to X-Forwarded-For

    left_unlocked_after_s: float = Field(0, ge=0)  # a lock unlocked this long: one lock.left_unlocked (0: off)
    auto_relock_after_s: float = Field(0, ge=0)  # a lock unlocked this long is locked again by a command (0: off)

    record_dir: str | None = None
    lockhook_dev_redis_port: int = Field(6379, gt=0, lt=65536)  # `lockhook dev`: its embedded Redis (or a free one)
    log_format: str | None = None  # "json" | "text"; default: text on a terminal, JSON otherwise
    prometheus_multiproc_dir: str | None = None  # prometheus_client multiprocess mode (several web processes)

    @field_validator("redis_tls_verify", mode="before")
    @classmethod
    def _lower_verify(cls, value):
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("redis_ca_cert", mode="before")
    @classmethod
    def _blank_ca_is_unset(cls, value):
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _ca_needs_tls(self):
        if self.redis_ca_cert and not self.redis_tls:
            raise ValueError("REDIS_CA_CERT is set but REDIS_URL is not rediss://: the connection would not use TLS")
        return self

    @property
    def redis_tls(self) -> bool:
        return self.redis_url.lower().startswith("rediss://")

    @field_validator(
        "seam_webhook_secret", "device_cloud_webhook_secret", "lockhook_api_token", "seam_api_key",
        "device_cloud_api_key", "notify_webhook_secret", "slack_webhook_url", mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value):
        return None if isinstance(value, str) and not value.strip() else value

    def webhook_secrets(self, endpoint: str) -> list[str]:
        """The secrets configured for a webhook endpoint ("seam" or "device-cloud")."""
        secret = self.seam_webhook_secret if endpoint == "seam" else self.device_cloud_webhook_secret
        return split_secrets(secret.get_secret_value() if secret else None)

    def require_webhook_secret(self) -> None:
        """Fail closed: a web process with no webhook secret at all must not start."""
        if not (self.webhook_secrets("seam") or self.webhook_secrets("device-cloud")):
            raise ConfigError(
                "SEAM_WEBHOOK_SECRET is not set (nor DEVICE_CLOUD_WEBHOOK_SECRET): "
                "refusing to accept unverifiable webhooks"
            )

    @property
    def device_retention_s(self) -> int:
        return int(self.device_retention_days * 86400)

    @property
    def api_token(self) -> str | None:
        return self.lockhook_api_token.get_secret_value() if self.lockhook_api_token else None

    @property
    def notify_retry_delays(self) -> list[float]:
        """Seconds between notification attempts (NOTIFY_RETRY_DELAYS_S, else the default schedule)."""
        given = [float(x) for x in re.split(r"[\s,]+", self.notify_retry_delays_s or "") if x]
        return given or [float(x) for x in defaults.NOTIFY_RETRY_DELAYS_S]

    @property
    def notify_events_patterns(self) -> list[str]:
        return split_secrets(self.notify_events) or ["*"]

    @property
    def notify_webhooks(self) -> list[tuple[str, list[str]]]:
        """NOTIFY_WEBHOOK_URL entries as (URL without its fragment, event patterns)."""
        out = []
        for entry in re.split(r"\s+|,(?=\s*https?://)", (self.notify_webhook_url or "").strip()):
            url, _, fragment = entry.strip(" ,").partition("#")
            if url:
                own = fragment.removeprefix("events=") if fragment.startswith("events=") else ""
                out.append((url, split_secrets(own) or self.notify_events_patterns))
        return out

    @property
    def allowed_hosts(self) -> set[str]:
        return {h.lower() for h in split_secrets(self.notify_allowed_hosts)}


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Build settings from the environment once per process (call it, never at import time)."""
    return Settings()
