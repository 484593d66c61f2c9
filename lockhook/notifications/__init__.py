"""Notifications: records, payloads and the callback URL policy."""
