"""The accounting platforms ("providers") a tenant can connect, by name and by proto value.

One place that says which providers exist and which this deployment supports: the gateway
reads the provider from the URL path with :func:`from_name`, the services read it from a
request with :func:`from_pb`. A provider's name is its gateway path segment, its column
value in schema ``integration`` and its dashboard redirect parameter (``?qbo=connected``).
"""

from __future__ import annotations

from enum import StrEnum

from aicollect.errors import InvalidArgument
from aicollect.integration.v1 import integration_service_pb2 as pb


class Provider(StrEnum):
    QBO = "qbo"
    XERO = "xero"

    @property
    def label(self) -> str:
        """The platform's name as people read it."""
        return LABELS[self]

    @property
    def enabled_key(self) -> str:
        """The tenant flag's setting name (``qbo_enabled``)."""
        return f"{self.value}_enabled"

    @property
    def kill_switch_key(self) -> str:
        """The platform kill switch's setting name (``qbo_kill_switch``)."""
        return f"{self.value}_kill_switch"

    @property
    def redirect_param(self) -> str:
        """The dashboard query parameter carrying a connect outcome (``?qbo=connected``)."""
        return self.value

    def to_pb(self) -> pb.Provider.ValueType:
        return TO_PB[self]


LABELS = {Provider.QBO: "QuickBooks Online", Provider.XERO: "Xero"}
TO_PB = {Provider.QBO: pb.PROVIDER_QBO, Provider.XERO: pb.PROVIDER_XERO}
# The providers this deployment has an implementation for.
SUPPORTED: tuple[Provider, ...] = (Provider.QBO, Provider.XERO)
DEFAULT = Provider.QBO


def from_name(name: str) -> Provider | None:
    """The supported provider called ``name`` (exact, lower-case), else None."""
    for provider in SUPPORTED:
        if provider.value == name:
            return provider
    return None


def require_name(name: str, field: str = "provider") -> Provider:
    """The supported provider called ``name``; INVALID_ARGUMENT naming ``field`` otherwise."""
    provider = from_name(name)
    if provider is None:
        raise InvalidArgument(
            f"{field}: unknown or unsupported provider {name[:40]!r}; "
            f"supported: {', '.join(p.value for p in SUPPORTED)}",
            field=field,
        )
    return provider


def from_pb(value: int) -> Provider:
    """A request's provider: unspecified is QBO; unsupported is INVALID_ARGUMENT (provider)."""
    if value == pb.PROVIDER_UNSPECIFIED:
        return DEFAULT
    for provider, number in TO_PB.items():
        if number == value and provider in SUPPORTED:
            return provider
    known = value in pb.Provider.values()
    name = pb.Provider.Name(pb.Provider.ValueType(value)) if known else str(value)
    raise InvalidArgument(
        f"provider {name} is not supported by this deployment; "
        f"supported: {', '.join(pb.Provider.Name(TO_PB[p]) for p in SUPPORTED)}",
        field="provider",
    )
