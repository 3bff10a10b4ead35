"""Runs one peer connector against our QBO or Xero emulator, inside that peer's own venv.

    python peer_run.py tap|tap-xero --base-url URL --token-url URL --stats FILE -- <tap args>
    python peer_run.py airbyte|airbyte-xero --base-url URL --token-url URL --stats FILE -- <args>

Plain standard library plus the peer's own packages: never run with the project's venv
and never imports the project. Both peers hard-code Intuit's hosts; they are pointed at
the emulator as shared/reference/peers.md section 3 describes, in memory only (no
installed file is changed):

* ``tap``: Singer ``tap-quickbooks`` 2.5.0. Its module constants
  ``tap_quickbooks.client.PROD_ENDPOINT_BASE`` / ``SANDBOX_ENDPOINT_BASE`` /
  ``TOKEN_REFRESH_URL`` are read at call time, so they are set before ``main()``. It goes
  through requests-oauthlib: the caller sets ``OAUTHLIB_INSECURE_TRANSPORT=1`` for http.
  The built-in ``@singer.utils.ratelimit(495, 60)`` stays in force; its sleeps are only
  counted (``singer.utils.time`` is wrapped) so the benchmark can say if it limited the run.
* ``airbyte``: ``airbyte-source-quickbooks`` 4.0.4. The packaged declarative manifest is
  loaded, ``definitions.base_requester.url_base`` and its authenticator's
  ``token_refresh_endpoint`` are replaced, and the CDK's entry point runs it.
* ``tap-xero``: Singer ``tap-xero``. Its module constant ``tap_xero.client.BASE_URL`` is
  read at call time; the token URL is a literal inside ``refresh_credentials``, so each
  ``XeroClient``'s own requests session gets a transport adapter mounted for exactly that
  URL which sends the unchanged request to the emulator's token endpoint instead. The
  emulator does not serve ``/Currencies``, which discovery's access check reads, so in
  ``--discover`` only that check is skipped (the catalog is the tap's own schemas).
* ``airbyte-xero``: ``airbyte-source-xero``. As for ``airbyte``, the packaged manifest
  with ``definitions.requester.url_base`` and
  ``definitions.oauth_authenticator.token_refresh_endpoint`` replaced.

At exit the process writes its resource usage (``getrusage``: peak RSS, CPU) and the
facts collected on the way to the ``--stats`` file as JSON.
"""

from __future__ import annotations

import atexit
import json
import pkgutil
import resource
import sys
import time
from pathlib import Path
from typing import Any


class RunStats:
    """Facts collected during the run, written with this process's rusage at exit."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.facts: dict[str, Any] = {"wrapper_start_epoch": time.time()}
        atexit.register(self.write)

    def mark_ready(self) -> None:
        """The peer is imported and configured: what follows is its own run."""
        self.facts["ready_epoch"] = time.time()

    def write(self) -> None:
        own = resource.getrusage(resource.RUSAGE_SELF)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.facts.update(
            exit_epoch=time.time(),
            max_rss_mb=round(max(own.ru_maxrss, children.ru_maxrss) / 1024, 1),  # KiB on Linux
            cpu_user_s=round(own.ru_utime + children.ru_utime, 3),
            cpu_system_s=round(own.ru_stime + children.ru_stime, 3),
        )
        self.path.write_text(json.dumps(self.facts, indent=2) + "\n")


class CountingTime:
    """``time`` as singer.utils sees it: everything passes through, sleeps are counted."""

    def __init__(self, facts: dict[str, Any]) -> None:
        self._facts = facts
        facts["ratelimit_sleeps"] = 0
        facts["ratelimit_slept_s"] = 0.0

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    def sleep(self, seconds: float) -> None:
        self._facts["ratelimit_sleeps"] += 1
        self._facts["ratelimit_slept_s"] = round(self._facts["ratelimit_slept_s"] + seconds, 3)
        time.sleep(seconds)


def run_tap(options: dict[str, str], stats: RunStats, tap_args: list[str]) -> None:
    import singer.utils  # type: ignore[import-not-found, import-untyped, unused-ignore]
    import tap_quickbooks  # type: ignore[import-not-found, import-untyped, unused-ignore]
    import tap_quickbooks.client as client  # type: ignore[import-not-found, import-untyped, unused-ignore]

    base = options["base-url"].rstrip("/")
    client.PROD_ENDPOINT_BASE = base
    client.SANDBOX_ENDPOINT_BASE = base
    client.TOKEN_REFRESH_URL = options["token-url"]
    # The ratelimit decorator looks up singer.utils' module-level ``time`` at call time.
    singer.utils.time = CountingTime(stats.facts)
    sys.argv = ["tap-quickbooks", *tap_args]
    stats.mark_ready()
    tap_quickbooks.main()


def run_tap_xero(options: dict[str, str], stats: RunStats, tap_args: list[str]) -> None:
    import requests  # type: ignore[import-untyped, unused-ignore]
    import tap_xero  # type: ignore[import-not-found, import-untyped, unused-ignore]
    import tap_xero.client as client  # type: ignore[import-not-found, import-untyped, unused-ignore]

    token_url = options["token-url"]

    class ToEmulator(requests.adapters.HTTPAdapter):  # type: ignore[misc, unused-ignore]
        """Sends the request it is mounted for to the emulator's token endpoint."""

        def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
            request.url = token_url
            return super().send(request, *args, **kwargs)

    original_init = client.XeroClient.__init__

    def init(self: Any, config: dict[str, Any]) -> None:
        original_init(self, config)
        self.session.mount(XERO_TOKEN_URL, ToEmulator())

    client.BASE_URL = options["base-url"].rstrip("/")
    client.XeroClient.__init__ = init
    if "--discover" in tap_args:
        tap_xero.Context.check_platform_access = lambda self: None  # GET /Currencies: not served
        stats.facts["discovery_access_check_skipped"] = True
    sys.argv = ["tap-xero", *tap_args]
    stats.mark_ready()
    tap_xero.main()


XERO_TOKEN_URL = "https://identity.xero.com/connect/token"  # noqa: S105  (a URL, not a secret)

# Per packaged manifest: where its API base and its token endpoint are.
MANIFESTS = {
    "airbyte": (
        "source_quickbooks",
        ("definitions", "base_requester", "url_base"),
        ("definitions", "base_requester", "authenticator", "token_refresh_endpoint"),
    ),
    "airbyte-xero": (
        "source_xero",
        ("definitions", "requester", "url_base"),
        ("definitions", "oauth_authenticator", "token_refresh_endpoint"),
    ),
}


def patched_manifest(peer: str, base_url: str, token_url: str) -> dict[str, Any]:
    import yaml  # type: ignore[import-untyped, unused-ignore]

    package, url_path, token_path = MANIFESTS[peer]
    raw = pkgutil.get_data(package, "manifest.yaml")
    if raw is None:
        raise SystemExit(f"{package}/manifest.yaml is not in this environment")
    manifest: dict[str, Any] = yaml.safe_load(raw.decode())
    for path, value in ((url_path, base_url.rstrip("/")), (token_path, token_url)):
        node = manifest
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return manifest


def run_airbyte(peer: str, options: dict[str, str], stats: RunStats, cdk_args: list[str]) -> None:
    from airbyte_cdk.entrypoint import launch  # type: ignore[import-not-found, unused-ignore]
    from airbyte_cdk.sources.declarative.manifest_declarative_source import (  # type: ignore[import-not-found, unused-ignore]
        ManifestDeclarativeSource,
    )

    manifest = patched_manifest(peer, options["base-url"], options["token-url"])
    stats.facts["manifest_version"] = manifest.get("version")
    source = ManifestDeclarativeSource(source_config=manifest)
    stats.mark_ready()
    launch(source, cdk_args)


PEERS = ("tap", "airbyte", "tap-xero", "airbyte-xero")


def split_argv(argv: list[str]) -> tuple[str, dict[str, str], list[str]]:
    """The peer, ``--name value`` pairs before ``--``, and the peer's own arguments."""
    usage = (
        "usage: peer_run.py tap|airbyte|tap-xero|airbyte-xero --base-url U --token-url U "
        "--stats F -- ARGS"
    )
    if len(argv) < 2 or argv[0] not in PEERS or "--" not in argv:
        raise SystemExit(usage)
    cut = argv.index("--")
    ours, theirs = argv[1:cut], argv[cut + 1 :]
    if len(ours) % 2:
        raise SystemExit(usage)
    options = {ours[i].removeprefix("--"): ours[i + 1] for i in range(0, len(ours), 2)}
    if not {"base-url", "token-url", "stats"} <= options.keys():
        raise SystemExit(usage)
    return argv[0], options, theirs


def main() -> None:
    peer, options, peer_args = split_argv(sys.argv[1:])
    stats = RunStats(options["stats"])
    if peer == "tap":
        run_tap(options, stats, peer_args)
    elif peer == "tap-xero":
        run_tap_xero(options, stats, peer_args)
    else:
        run_airbyte(peer, options, stats, peer_args)


if __name__ == "__main__":
    main()
