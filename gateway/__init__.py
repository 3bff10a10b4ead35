"""Public HTTP gateway (aiohttp): OAuth callback, webhooks, dashboard JSON, health, metrics."""
