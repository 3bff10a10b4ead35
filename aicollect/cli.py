"""The ``aicollect`` command line.

``aicollect run`` starts the whole local stack; the other commands start one process or do
one job (``migrate``, ``rotate-keys``). ``python -m services.integration`` and friends start
the same processes as ``aicollect integration`` and friends.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import sys
from collections.abc import Callable, Sequence

from aicollect import logs
from aicollect.settings import MissingSettingError, Settings


def _cmd_migrate(args: argparse.Namespace) -> int:
    from aicollect.db.migrate import missing_heads, upgrade

    settings = Settings.from_env()
    logs.configure("migrate", level=settings.log_level, fmt="text")
    try:
        settings.require("AICOLLECT_DATABASE_URL")
    except MissingSettingError as exc:
        print(f"migrate: {exc}", file=sys.stderr)
        return 2
    assert settings.database_url is not None
    if args.check:
        missing = asyncio.run(missing_heads(settings.database_url))
        if missing:
            print(f"migrate: the database lacks {', '.join(sorted(missing))}", file=sys.stderr)
            return 3
        print("the database schema is current")
        return 0
    upgrade(settings.database_url, args.revision)
    print(f"migrated to {args.revision}")
    return 0


def _cmd_integration(args: argparse.Namespace) -> int:
    from services.integration.__main__ import main

    return main()


def _cmd_matcher(args: argparse.Namespace) -> int:
    from services.matcher.__main__ import main

    return main()


def _cmd_gateway(args: argparse.Namespace) -> int:
    from gateway.__main__ import main

    return main()


EMULATOR_MODULE = "emulators.qbo"


def _cmd_emulator(args: argparse.Namespace) -> int:
    """Replaces this process with ``python -m emulators.qbo``: the emulator is a development
    tool in its own package (``emulators/``), which the runtime never imports and the
    production image does not contain."""
    if importlib.util.find_spec("emulators") is None:
        print(
            "emulator: the Intuit emulator is a development tool and is not installed here; "
            "run it from a source checkout (make bootstrap) or the image's emulator target",
            file=sys.stderr,
        )
        return 2
    sys.stdout.flush()
    argv = [sys.executable, "-m", EMULATOR_MODULE, *args.emulator_args]
    os.execv(sys.executable, argv)  # noqa: S606 - our own interpreter, no shell


def _cmd_rotate_keys(args: argparse.Namespace) -> int:
    # The integration service alone reads tokens and keys (tests/test_architecture.py).
    from services.integration.keyrotation import main

    return main()


def _cmd_run(args: argparse.Namespace) -> int:
    from aicollect.local_run import run_local_stack

    if args.replicas < 1:
        print("aicollect run: --replicas must be at least 1", file=sys.stderr)
        return 2
    return asyncio.run(
        run_local_stack(Settings.from_env(), seed_demo=not args.no_demo, replicas=args.replicas)
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aicollect", description="ai-collect accounting integration (QuickBooks Online)"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands: list[tuple[str, str, Callable[[argparse.Namespace], int]]] = [
        ("integration", "run the integration service (gRPC, default :50051)", _cmd_integration),
        ("matcher", "run the matcher service (gRPC, default :50052)", _cmd_matcher),
        ("gateway", "run the public HTTP gateway (default :8080)", _cmd_gateway),
    ]
    run = sub.add_parser(
        "run",
        help="run the whole local stack (embedded PostgreSQL and the Intuit emulator by default)",
    )
    run.add_argument(
        "--no-demo", action="store_true", help="do not seed a demo company in the emulator"
    )
    run.add_argument(
        "--replicas",
        type=int,
        default=1,
        help="run N replicas of the gateway, integration and matcher over one database, "
        "each on a port the kernel picks, with a round-robin balancer on the gateway's port "
        "(docs/scaling.md)",
    )
    run.set_defaults(func=_cmd_run)
    sub.add_parser(
        "rotate-keys", help="re-encrypt every stored token under the newest key"
    ).set_defaults(func=_cmd_rotate_keys)
    migrate = sub.add_parser("migrate", help="apply database migrations")
    migrate.add_argument("revision", nargs="?", default="heads")
    migrate.add_argument(
        "--check",
        action="store_true",
        help="change nothing; exit 0 when the schema is current, 3 when migrations are missing",
    )
    migrate.set_defaults(func=_cmd_migrate)
    for name, help_text, func in commands:
        sub.add_parser(name, help=help_text).set_defaults(func=func)
    # The emulator has its own parser (emulators/qbo/cli.py): everything after
    # "emulator", --help included, is handed to it (see main).
    sub.add_parser(
        "emulator", help="run the Intuit emulator (default :8090)", add_help=False
    ).set_defaults(func=_cmd_emulator, emulator_args=[])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "emulator":
        args.emulator_args = extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    func: Callable[[argparse.Namespace], int] = args.func
    return func(args)


if __name__ == "__main__":
    raise SystemExit(main())
