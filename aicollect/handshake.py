"""What the local stack and the processes it starts agree on.

**Ports.** Any process may be configured to listen on port 0 (the kernel picks a free port). When
``AICOLLECT_PORTS_FILE`` names a file, the process writes the ports it actually bound there
as one JSON object (``{"grpc": 43121}``, ``{"http": 39877}``) once it is listening. The
file appears whole (written aside, then renamed), so a reader never sees half of it.

The local stack (``aicollect/localstack.py``) reads these files; that is how ``aicollect run``,
the benchmarks and the tests start every process on port 0 with no race between choosing a
free port and binding it.

**The gateway's socket.** Two processes need the gateway's address before it starts (the
integration service for its OAuth redirect URI, the emulator for its webhook URL), and the
gateway needs theirs. So the stack binds the gateway's listening socket itself (port 0 or
the configured one) and hands it down: ``AICOLLECT_GATEWAY_LISTEN_FD`` names the inherited
file descriptor, and the gateway serves on it instead of binding.

**Emulator secrets.** The stack starts the Intuit emulator (``python -m emulators.qbo``, a
development tool the runtime never imports) with the app's client secret and webhook
verifier token, and the Xero emulator (``python -m emulators.xero``) with its client secret
and webhook key, in these environment variables: a command line is visible to every user
(``ps``, ``/proc/<pid>/cmdline``), the environment is not.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

PORTS_FILE_ENV = "AICOLLECT_PORTS_FILE"
GATEWAY_LISTEN_FD_ENV = "AICOLLECT_GATEWAY_LISTEN_FD"
EMULATOR_CLIENT_SECRET_ENV = "AICOLLECT_EMULATOR_CLIENT_SECRET"  # noqa: S105 - a name
EMULATOR_VERIFIER_TOKEN_ENV = "AICOLLECT_EMULATOR_VERIFIER_TOKEN"  # noqa: S105 - a name
# The same for the Xero emulator (``python -m emulators.xero``).
XERO_EMULATOR_CLIENT_SECRET_ENV = "AICOLLECT_XERO_EMULATOR_CLIENT_SECRET"  # noqa: S105 - a name
XERO_EMULATOR_WEBHOOK_KEY_ENV = "AICOLLECT_XERO_EMULATOR_WEBHOOK_KEY"


def report_ports(**ports: int) -> None:
    """Writes ``ports`` to the file named by ``$AICOLLECT_PORTS_FILE``; nothing if unset."""
    target = os.environ.get(PORTS_FILE_ENV)
    if not target:
        return
    path = Path(target)
    aside = path.with_name(path.name + ".tmp")
    aside.write_text(json.dumps(ports))
    aside.replace(path)


def read_ports(path: Path) -> dict[str, int] | None:
    """The ports a process reported in ``path``, or None while it has not yet."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    return {str(name): int(port) for name, port in data.items()}


def inherited_socket() -> socket.socket | None:
    """The listening socket handed down in ``$AICOLLECT_GATEWAY_LISTEN_FD``, if any."""
    fd = os.environ.get(GATEWAY_LISTEN_FD_ENV)
    if not fd:
        return None
    return socket.socket(fileno=int(fd))
