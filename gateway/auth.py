"""Dashboard authentication: a bearer JWT (HS256) whose claims carry the tenant.

The tenant always comes from the verified token, never from the request body or query.
"""

from __future__ import annotations

from dataclasses import dataclass

import jwt
from aiohttp import web

from aicollect.settings import Settings

TENANT_CLAIM = "tenant_id"
LEEWAY_S = 30


@dataclass(frozen=True)
class Caller:
    tenant_id: str
    subject: str


class AuthError(Exception):
    """Why a request is not authenticated (safe to show)."""


def verify(
    authorization: str | None,
    secret: str,
    *,
    audience: str | None = None,
    issuer: str | None = None,
) -> Caller:
    """The caller of a dashboard request. ``audience``/``issuer``, when given, must match the
    token's ``aud``/``iss``; when not given, those claims are not checked."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:  # the scheme is case-insensitive (RFC 6750)
        raise AuthError("an 'Authorization: Bearer <JWT>' header is required")
    required = ["exp", "sub", TENANT_CLAIM]
    if audience:
        required.append("aud")
    if issuer:
        required.append("iss")
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            audience=audience or None,
            issuer=issuer or None,
            options={"require": required, "verify_aud": bool(audience)},
            leeway=LEEWAY_S,
        )
    except jwt.ExpiredSignatureError:
        raise AuthError("the token has expired") from None
    except jwt.InvalidAudienceError:
        raise AuthError("the token is not meant for this service (aud)") from None
    except jwt.InvalidIssuerError:
        raise AuthError("the token was not issued by the expected issuer (iss)") from None
    except jwt.MissingRequiredClaimError as exc:
        raise AuthError(f"the token lacks the '{exc.claim}' claim") from None
    except jwt.InvalidTokenError as exc:
        raise AuthError(f"the token is not valid ({type(exc).__name__})") from None
    tenant, subject = claims.get(TENANT_CLAIM), claims.get("sub")
    if not isinstance(tenant, str) or not tenant.strip() or not isinstance(subject, str):
        raise AuthError("the token carries no tenant")
    return Caller(tenant.strip(), subject)


def caller_of(request: web.Request, settings: Settings) -> Caller:
    """The verified caller of a dashboard request, by the gateway's JWT settings."""
    secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret else ""
    return verify(
        request.headers.get("Authorization"),
        secret,
        audience=settings.jwt_audience,
        issuer=settings.jwt_issuer,
    )
