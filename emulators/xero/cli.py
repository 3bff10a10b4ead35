"""``python -m emulators.xero``: run the Xero emulator."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from datetime import date
from typing import Final

from emulators.common.serve import base_parser, secret
from emulators.common.serve import main as run_main
from emulators.common.serve import serve as serve_app
from emulators.xero.app import create_app
from emulators.xero.config import AppConfig, EmulatorConfig, OrganisationSpec
from emulators.xero.identity import AUTHORIZE_PATH, REVOKE_PATH, TOKEN_PATH
from emulators.xero.keys import STATE_KEY
from emulators.xero.state import EmulatorState

# Secrets on a command line are visible to every user (ps); these keep them off it.
CLIENT_SECRET_ENV: Final = "AICOLLECT_XERO_EMULATOR_CLIENT_SECRET"  # noqa: S105 (a name)
WEBHOOK_KEY_ENV: Final = "AICOLLECT_XERO_EMULATOR_WEBHOOK_KEY"
PROG: Final = "python -m emulators.xero"


def build_parser() -> argparse.ArgumentParser:
    parser, app = base_parser(
        PROG,
        "Xero emulator: OAuth 2.0 with /connections, the Accounting API subset, Xero's "
        "limits and signed webhooks.",
        port=8091,
        access_token_ttl=1800,
        secret_env=CLIENT_SECRET_ENV,
    )
    app.add_argument("--webhook-key", help=f"webhook signing key (or ${WEBHOOK_KEY_ENV})")
    demo = parser.add_argument_group("create a generated organisation at start-up")
    demo.add_argument("--demo-organisation", action="store_true")
    demo.add_argument("--demo-contacts", type=int, default=50)
    demo.add_argument("--demo-invoices", type=int, default=200)
    demo.add_argument("--demo-overdue-fraction", type=float, default=0.3)
    demo.add_argument("--demo-tenant-id", default=None)
    demo.add_argument("--demo-today", type=date.fromisoformat, default=None)
    demo.add_argument("--starter-tier", action="store_true", help="1,000 calls a day")
    parser.add_argument("--seed", type=int, default=1, help="generator and fault seed")
    return parser


def config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    config = EmulatorConfig(
        host=args.host, port=args.port, access_token_ttl=args.access_token_ttl, seed=args.seed
    )
    if args.client_id:
        client_secret = secret(args.client_secret, CLIENT_SECRET_ENV, "--client-secret")
        webhook_key = args.webhook_key or os.environ.get(WEBHOOK_KEY_ENV, "")
        config.apps.append(
            AppConfig(
                client_id=args.client_id,
                client_secret=client_secret,
                redirect_uris=list(args.redirect_uri),
                webhook_url=args.webhook_url,
                webhook_key=webhook_key,
            )
        )
    if args.demo_organisation:
        config.organisations.append(
            OrganisationSpec(
                tenant_id=args.demo_tenant_id,
                contacts=args.demo_contacts,
                invoices=args.demo_invoices,
                overdue_fraction=args.demo_overdue_fraction,
                seed=args.seed,
                today=args.demo_today,
                starter_tier=args.starter_tier,
            )
        )
    return config


def _banner(state: EmulatorState) -> Callable[[str], list[str]]:
    def lines(base: str) -> list[str]:
        out = [
            f"authorize:          {base}{AUTHORIZE_PATH}",
            f"token / revocation: {base}{TOKEN_PATH}  {base}{REVOKE_PATH}",
            f"connections:        {base}/connections",
            f"Accounting API:     {base}/api.xro/2.0",
            f"control API:        {base}/_emulator/",
        ]
        out += [f"app:                {client_id}" for client_id in state.oauth.apps]
        for org in state.organisations.values():
            counts = org.summary()["counts"]
            out.append(
                f"organisation:       {org.tenant_id} {org.name!r} ({counts['contacts']} "
                f"contacts, {counts['invoices']} invoices, today {org.today()})"
            )
        return out

    return lines


async def serve(config: EmulatorConfig) -> None:
    app = create_app(config)
    await serve_app(app, config.host, config.port, "Xero emulator", _banner(app[STATE_KEY]))


def main(argv: list[str] | None = None) -> int:
    return run_main(argv, build_parser(), config_from_args, serve)
