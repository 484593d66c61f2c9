"""Ingest: signature checks, the durable inbox, and the recorded-delivery format."""
