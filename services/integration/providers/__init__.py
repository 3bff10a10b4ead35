"""Accounting platforms behind one seam: the registry the core asks for a platform.

``base.AccountingPlatform`` is the interface; each platform lives in its own package
(``qbo/``). ``FACTORIES`` names each platform's factory, loaded on first use, so the core
never imports a platform's client it does not run. The process builds one
``PlatformRegistry`` at start (``deps``), and everything that needs a platform asks it by
the provider name stored with the connection: ``registry.platform_for("qbo")``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from typing import cast

import aiohttp

from aicollect.errors import InvalidArgument
from aicollect.metrics import IntegrationMetrics
from aicollect.settings import Settings
from services.integration.providers.base import AccountingPlatform

PlatformFactory = Callable[
    [Settings, aiohttp.ClientSession, IntegrationMetrics], AccountingPlatform
]

# provider name -> "module:callable" building it from the settings.
FACTORIES: dict[str, str] = {
    "qbo": "services.integration.providers.qbo.platform:QboPlatform.from_settings",
    "xero": "services.integration.providers.xero.platform:XeroPlatform.from_settings",
}
DEFAULT_PROVIDER = "qbo"  # connections made before providers were stored are QBO's


class UnknownProvider(InvalidArgument):
    default_reason = "PROVIDER_UNKNOWN"


def _factory(name: str) -> PlatformFactory:
    target = FACTORIES.get(name)
    if target is None:
        raise UnknownProvider(
            f"unknown accounting platform {name[:40]!r}; known: {', '.join(sorted(FACTORIES))}",
            field="provider",
        )
    module, _, attr = target.partition(":")
    obj: object = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    assert callable(obj)
    return cast(PlatformFactory, obj)


class PlatformRegistry:
    """The platforms this process runs, by provider name."""

    def __init__(self, platforms: Mapping[str, AccountingPlatform]) -> None:
        self._platforms = dict(platforms)

    @classmethod
    def build(
        cls,
        settings: Settings,
        http: aiohttp.ClientSession,
        metrics: IntegrationMetrics,
        names: Iterable[str] = (DEFAULT_PROVIDER,),
    ) -> PlatformRegistry:
        return cls({name: _factory(name)(settings, http, metrics) for name in names})

    @staticmethod
    def configured(settings: Settings) -> tuple[str, ...]:
        """The platforms this deployment runs: QBO always, Xero once its client id is set."""
        return (DEFAULT_PROVIDER, *(("xero",) if settings.xero_client_id else ()))

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._platforms)

    def platform_for(self, provider: str = DEFAULT_PROVIDER) -> AccountingPlatform:
        """The platform for a provider name; ``""`` (a row without one) means QBO.
        INVALID_ARGUMENT for a name this process does not run."""
        name = (provider or DEFAULT_PROVIDER).strip().lower()
        platform = self._platforms.get(name)
        if platform is None:
            raise UnknownProvider(
                f"accounting platform {name[:40]!r} is not available; "
                f"available: {', '.join(self._platforms)}",
                field="provider",
            )
        return platform
