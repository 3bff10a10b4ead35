"""Addresses for tests, with no window between choosing a port and using it."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def refused_address() -> Iterator[str]:
    """``127.0.0.1:<port>`` where nothing listens, for as long as the block runs: the port is
    bound (so no one else can take it) but not listening, so every connection is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{sock.getsockname()[1]}"
