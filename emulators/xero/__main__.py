"""``python -m emulators.xero``: the Xero emulator (``--help`` lists its options)."""

from __future__ import annotations

import sys

from emulators.xero.cli import main

if __name__ == "__main__":
    sys.exit(main())
