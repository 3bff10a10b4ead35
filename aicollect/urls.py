"""URL helpers shared by the integration service and the gateway."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit


def with_query(base: str, **params: str) -> str:
    """``base`` with ``params`` set in its query (replacing any of the same name)."""
    parts = urlsplit(base)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in params] + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


def same_origin_and_path(url: str, base: str) -> bool:
    """True when ``url`` points at ``base``'s scheme, host, port and path."""
    a, b = urlsplit(url), urlsplit(base)
    return (a.scheme, a.netloc, a.path) == (b.scheme, b.netloc, b.path)
