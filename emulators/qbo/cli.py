"""``python -m emulators.qbo`` (``aicollect emulator`` in a checkout): run the Intuit emulator."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from datetime import date

from aicollect.handshake import EMULATOR_CLIENT_SECRET_ENV as CLIENT_SECRET_ENV
from aicollect.handshake import EMULATOR_VERIFIER_TOKEN_ENV as VERIFIER_TOKEN_ENV
from emulators.common.serve import base_parser, secret
from emulators.common.serve import main as run_main
from emulators.common.serve import serve as serve_app
from emulators.qbo.app import create_app
from emulators.qbo.config import WEBHOOK_FORMATS, AppConfig, CompanySpec, EmulatorConfig
from emulators.qbo.keys import STATE_KEY
from emulators.qbo.state import EmulatorState

# Secrets on a command line are visible to every user (ps, /proc/<pid>/cmdline); the
# environment variables CLIENT_SECRET_ENV and VERIFIER_TOKEN_ENV keep them off it (the names
# are shared with the local stack, aicollect/handshake.py). A flag on the command line wins.
__all__ = [
    "CLIENT_SECRET_ENV",
    "VERIFIER_TOKEN_ENV",
    "build_parser",
    "config_from_args",
    "main",
    "serve",
]


def build_parser() -> argparse.ArgumentParser:
    parser, app = base_parser(
        "aicollect emulator",
        "Intuit emulator: OAuth 2.0, QBO Accounting API v3 and signed webhooks.",
        port=8090,
        access_token_ttl=3600,
        secret_env=CLIENT_SECRET_ENV,
    )
    app.add_argument("--verifier-token", help=f"webhook HMAC key (or ${VERIFIER_TOKEN_ENV})")
    app.add_argument("--webhook-format", choices=WEBHOOK_FORMATS, default="cloudevents")
    demo = parser.add_argument_group("create a generated company at start-up")
    demo.add_argument("--demo-company", action="store_true")
    demo.add_argument("--demo-customers", type=int, default=50)
    demo.add_argument("--demo-invoices", type=int, default=200)
    demo.add_argument("--demo-overdue-fraction", type=float, default=0.3)
    demo.add_argument("--demo-realm-id", default=None)
    demo.add_argument("--demo-today", type=date.fromisoformat, default=None)
    demo.add_argument("--seed", type=int, default=1, help="generator and fault seed")
    return parser


def config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    config = EmulatorConfig(
        host=args.host, port=args.port, access_token_ttl=args.access_token_ttl, seed=args.seed
    )
    if args.client_id:
        client_secret = secret(args.client_secret, CLIENT_SECRET_ENV, "--client-secret")
        verifier_token = args.verifier_token
        if verifier_token is None:
            verifier_token = os.environ.get(VERIFIER_TOKEN_ENV, "")
        config.apps.append(
            AppConfig(
                client_id=args.client_id,
                client_secret=client_secret,
                redirect_uris=list(args.redirect_uri),
                webhook_url=args.webhook_url,
                verifier_token=verifier_token,
                webhook_format=args.webhook_format,
            )
        )
    if args.demo_company:
        config.companies.append(
            CompanySpec(
                realm_id=args.demo_realm_id,
                customers=args.demo_customers,
                invoices=args.demo_invoices,
                overdue_fraction=args.demo_overdue_fraction,
                seed=args.seed,
                today=args.demo_today,
            )
        )
    return config


def _banner(state: EmulatorState) -> Callable[[str], list[str]]:
    def lines(base: str) -> list[str]:
        out = [
            f"discovery document: {base}/.well-known/openid_configuration",
            f"QBO API base:       {base}/v3",
            f"control API:        {base}/_emulator/",
        ]
        out += [f"app:                {client_id}" for client_id in state.oauth.apps]
        for company in state.companies.values():
            summary = company.summary()
            out.append(
                f"company:            {company.realm_id} {company.name!r} "
                f"({summary['counts']['customers']} customers, "
                f"{summary['counts']['invoices']} invoices, today {summary['today']})"
            )
        return out

    return lines


async def serve(config: EmulatorConfig) -> None:
    app = create_app(config)
    await serve_app(app, config.host, config.port, "Intuit emulator", _banner(app[STATE_KEY]))


def main(argv: list[str] | None = None) -> int:
    return run_main(argv, build_parser(), config_from_args, serve)
