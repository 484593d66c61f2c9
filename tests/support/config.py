"""What the tests configure lockhook with: secrets, tokens, settings overrides, deliveries signed as Svix signs."""

from __future__ import annotations

from lockhook.ingest.signatures import signature_headers
from lockhook.settings import Settings

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
DEVICE_CLOUD_SECRET = "whsec_dGVzdC1kZXZpY2UtY2xvdWQtc2VjcmV0LTEyMzQ1Ng=="
API_TOKEN = "test-api-token-5b1d"
SEAM_API_KEY = "seam_apikey1_token"
DEVICE_CLOUD_API_KEY = "dc-test-key-7f3a"


def signed(body: bytes, delivery_id: str, secret: str = SECRET, timestamp: int | None = None,
           prefix: str = "svix") -> dict[str, str]:
    """Headers for a signed delivery, produced with svix's own signing."""
    headers = signature_headers(secret, delivery_id, body, timestamp=timestamp, prefix=prefix)
    headers["content-type"] = "application/json"
    return headers


def configured(settings: Settings, **overrides) -> Settings:
    """Settings with overrides, validated as the environment would be (secrets become SecretStr)."""
    return Settings.model_validate({**dict(settings), **overrides})
