"""lockhook: confirms smart-lock commands from verified Seam and device-cloud webhooks."""

__version__ = "0.1.0"
