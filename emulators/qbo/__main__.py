"""``python -m emulators.qbo``: the Intuit emulator (``--help`` lists its options)."""

from __future__ import annotations

import sys

from emulators.qbo.cli import main

if __name__ == "__main__":
    sys.exit(main())
