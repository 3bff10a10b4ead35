"""The ``aicollect`` command line."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    print("aicollect: not wired yet", file=sys.stderr)
    return 2
