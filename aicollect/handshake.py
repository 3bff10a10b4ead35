"""What the local stack and the processes it starts agree on.

**Emulator secrets.** The stack starts the Intuit emulator (``python -m emulators.qbo``, a
development tool the runtime never imports) with the app's client secret and webhook
verifier token in these environment variables: a command line is visible to every user
(``ps``, ``/proc/<pid>/cmdline``), the environment is not.
"""

from __future__ import annotations

EMULATOR_CLIENT_SECRET_ENV = "AICOLLECT_EMULATOR_CLIENT_SECRET"  # noqa: S105 - a name
EMULATOR_VERIFIER_TOKEN_ENV = "AICOLLECT_EMULATOR_VERIFIER_TOKEN"  # noqa: S105 - a name
