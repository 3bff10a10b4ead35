"""``python -m aicollect.emulator``."""

from __future__ import annotations

import sys

from aicollect.emulator.cli import main

if __name__ == "__main__":
    sys.exit(main())
