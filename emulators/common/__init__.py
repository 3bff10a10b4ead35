"""What every provider emulator shares: the movable clock, money as cents, JSON responses,
fault settings and their dice, webhook delivery with retries, the control API's plumbing and
the ``python -m emulators.<provider>`` serve loop."""
