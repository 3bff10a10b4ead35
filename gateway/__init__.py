"""Public HTTP gateway (aiohttp): OAuth callback, Intuit webhooks, dashboard JSON, health, metrics."""
