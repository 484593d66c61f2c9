"""Typed errors with stable codes; the codes are what clients see in JSON bodies.

LockhookError
 ├── ConfigError                      (startup: a required setting is missing or bad)
 ├── SignatureError                   401
 │    ├── MissingSignatureHeaders       missing_signature_headers
 │    ├── TimestampOutOfTolerance       timestamp_out_of_tolerance
 │    └── InvalidSignature              invalid_signature
 ├── PayloadTooLarge                  413 payload_too_large
 ├── BodyTimeout                      408 body_read_timeout
 ├── EndpointDisabled                 404 endpoint_disabled
 ├── StorageUnavailable               503 storage_unavailable
 ├── ApiDisabled                      503 api_disabled
 ├── Unauthorized                     401 unauthorized
 ├── CrossOriginRefused               403 cross_origin_refused (a state-changing dashboard post from another site)
 ├── TooManyAttempts                  429 too_many_attempts (failed sign-ins / bearer tokens from one address)
 ├── NotFound                         404 not_found (unknown routes too, and ids outside lockhook.ids)
 ├── MethodNotAllowed                 405 method_not_allowed
 ├── ValidationFailed                 422 validation_error
 │    ├── CallbackUrlRefused            callback_url_refused (SSRF policy for per-command callback_url)
 │    └── IdempotencyKeyReused          idempotency_key_reused (an Idempotency-Key or custom_id already
 │                                        names a different request)
 └── UpstreamError                    502 upstream_error (Seam / device cloud unreachable)
"""

from __future__ import annotations


class LockhookError(Exception):
    """Base of every error lockhook raises on purpose."""

    status_code = 500
    code = "internal_error"

    def __init__(self, message: str | None = None, **details):
        super().__init__(message or self.code)
        self.message = message or self.code
        self.details = details

    def to_json(self) -> dict:
        body = {"error": self.code, "message": self.message}
        body.update(self.details)
        return body


class ConfigError(LockhookError):
    code = "config_error"


class SignatureError(LockhookError):
    status_code = 401
    code = "invalid_signature"


class MissingSignatureHeaders(SignatureError):
    code = "missing_signature_headers"


class TimestampOutOfTolerance(SignatureError):
    code = "timestamp_out_of_tolerance"


class InvalidSignature(SignatureError):
    code = "invalid_signature"


class AmbiguousSignatureHeaders(LockhookError):
    """A signature header given twice (or svix-* and webhook-* disagreeing): which one was signed is unclear."""

    status_code = 400
    code = "ambiguous_signature_headers"


class PayloadTooLarge(LockhookError):
    status_code = 413
    code = "payload_too_large"


class BodyTimeout(LockhookError):
    status_code = 408
    code = "body_read_timeout"


class EndpointDisabled(LockhookError):
    status_code = 404
    code = "endpoint_disabled"


class StorageUnavailable(LockhookError):
    status_code = 503
    code = "storage_unavailable"


class ApiDisabled(LockhookError):
    status_code = 503
    code = "api_disabled"


class Unauthorized(LockhookError):
    status_code = 401
    code = "unauthorized"


class CrossOriginRefused(LockhookError):
    """A dashboard post whose Origin is another site, `null`, or absent from a cross-site fetch."""

    status_code = 403
    code = "cross_origin_refused"


class TooManyAttempts(LockhookError):
    """Too many failed sign-ins or wrong tokens from this address: try again after `retry_after_s`."""

    status_code = 429
    code = "too_many_attempts"

    def __init__(self, message: str | None = None, retry_after_s: int = 1):
        super().__init__(message, retry_after_s=retry_after_s)
        self.retry_after_s = retry_after_s


class NotFound(LockhookError):
    status_code = 404
    code = "not_found"


class MethodNotAllowed(LockhookError):
    status_code = 405
    code = "method_not_allowed"


class ValidationFailed(LockhookError):
    status_code = 422
    code = "validation_error"


class CallbackUrlRefused(ValidationFailed):
    code = "callback_url_refused"


class IdempotencyKeyReused(ValidationFailed):
    """The key (or custom_id) was first used for another request: answering the old command would lie."""

    code = "idempotency_key_reused"


class UpstreamError(LockhookError):
    status_code = 502
    code = "upstream_error"
