"""Process packages, one per long-running service."""
