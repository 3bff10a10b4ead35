"""Integration service: QBO connections, tokens, webhooks inbox, sync workers, admin settings."""
