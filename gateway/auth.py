"""Dashboard authentication: a bearer JWT (HS256) whose claims carry the tenant.

The tenant always comes from the verified token, never from the request body or query.
"""

from __future__ import annotations

from dataclasses import dataclass

import jwt
from aiohttp import web

TENANT_CLAIM = "tenant_id"
LEEWAY_S = 30


@dataclass(frozen=True)
class Caller:
    tenant_id: str
    subject: str


class AuthError(Exception):
    """Why a request is not authenticated (safe to show)."""


def verify(authorization: str | None, secret: str) -> Caller:
    if not authorization or not authorization.startswith("Bearer "):
        raise AuthError("an 'Authorization: Bearer <JWT>' header is required")
    token = authorization.removeprefix("Bearer ").strip()
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            options={"require": ["exp", "sub", TENANT_CLAIM]},
            leeway=LEEWAY_S,
        )
    except jwt.ExpiredSignatureError:
        raise AuthError("the token has expired") from None
    except jwt.InvalidTokenError as exc:
        raise AuthError(f"the token is not valid ({type(exc).__name__})") from None
    tenant, subject = claims.get(TENANT_CLAIM), claims.get("sub")
    if not isinstance(tenant, str) or not tenant.strip() or not isinstance(subject, str):
        raise AuthError("the token carries no tenant")
    return Caller(tenant.strip(), subject)


def caller_of(request: web.Request, secret: str) -> Caller:
    return verify(request.headers.get("Authorization"), secret)
