"""The HTTP edge: webhook receipt, commands API, health, metrics and dashboard."""
