"""Logging: JSON lines (default) or text, with secrets scrubbed as a last line of defence."""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, quote_plus

# The request id of the work in progress (set by the gateway and the gRPC interceptor), so
# every log line of one webhook or dashboard request can be found across the processes.
request_id: ContextVar[str] = ContextVar("request_id", default="")

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}

REDACTED = "[REDACTED]"

# Secrets shorter than this are not redacted by value (they would blank out ordinary words);
# no configured secret is that short in practice (generated ones have 32+ characters).
MIN_SECRET_CHARS = 6

# Last line of defence, by value: the secrets this process knows (registered by Settings).
_secrets: set[str] = set()
_secrets_pattern: re.Pattern[str] | None = None
_secrets_lock = threading.Lock()

# Names of fields whose value is a credential, wherever they appear: as a log record's extra
# field, ``name=value`` (URLs, forms, reprs), ``name: value`` (headers) or a JSON/dict key.
_CREDENTIAL_NAMES = (
    "access_token",
    "refresh_token",
    "id_token",
    "token",
    "client_secret",
    "secret",
    "password",
    "passwd",
    "authorization",
    "proxy_authorization",
    "api_key",
    "internal_token",
    "jwt_secret",
    "token_keys",
    "verifier_token",
)
_NAMES = "|".join(sorted(_CREDENTIAL_NAMES, key=len, reverse=True))

# ... by shape, only for real credential fields. Diagnostics such as grpc_code, intuit_tid,
# request ids and a traceback's source lines (``token = settings.x``: spaces around ``=``
# mark code, not data) keep their values.
_SCRUB: list[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]] = [
    # An Authorization header's credentials (not prose: "basic configuration").
    (
        re.compile(
            r"(?i)\b(bearer|basic)\s+"
            r"(?:[A-Za-z0-9._~+/=-]{16,}|(?=[A-Za-z]*[0-9._~+/=-])[A-Za-z0-9._~+/=-]{8,})"
        ),
        rf"\1 {REDACTED}",
    ),
    # "name": "value" / 'name': 'value' (JSON, dict reprs): the quoted value whole.
    (
        re.compile(rf"(?i)([\"'](?:{_NAMES})[\"']\s*:\s*)(?:\"(?:[^\"\\]|\\.)*\"|'[^']*')"),
        lambda m: f"{m.group(1)}{m.group(0)[len(m.group(1))]}{REDACTED}{m.group(0)[-1]}",
    ),
    # name=value (query strings, forms, keyword reprs) and name: value (headers).
    (
        re.compile(rf"(?i)((?<![\w.-])(?:{_NAMES})(?:=|:[ \t]*)[\"']?)[^\s&,;)}}\"']+"),
        rf"\1{REDACTED}",
    ),
    # OAuth's code and state travel in URLs and forms only.
    (re.compile(r"(?i)((?:^|[?&])(?:code|state)=)[^&\s#\"']+"), rf"\1{REDACTED}"),
    # A password in a URL's user info (database URLs).
    (re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^/\s:@]*:)[^/\s@]+@"), rf"\1{REDACTED}@"),
]


def redact_values(values: Iterable[str]) -> None:
    """Registers secret values of this process: from now on they are redacted from every
    log line, wherever they appear (message, arguments, exception text, extra fields), also
    URL-encoded or escaped as in JSON or a repr. ``Settings`` registers its secrets."""
    global _secrets_pattern
    forms: set[str] = set()
    for value in values:
        if len(value) < MIN_SECRET_CHARS:
            continue
        escaped = (json.dumps(value)[1:-1], repr(value)[1:-1])  # inside JSON, inside a repr
        forms |= {value, quote(value, safe=""), quote_plus(value), *escaped}
    with _secrets_lock:
        if forms <= _secrets:
            return
        _secrets.update(forms)
        alternatives = sorted(_secrets, key=len, reverse=True)  # longest first
        _secrets_pattern = re.compile("|".join(re.escape(v) for v in alternatives))


def is_credential_name(name: str) -> bool:
    lowered = name.lower().replace("-", "_")
    return lowered in _CREDENTIAL_NAMES or lowered.endswith(("_token", "_secret", "password"))


def scrub(text: str) -> str:
    """``text`` with known secret values and credential fields redacted."""
    pattern = _secrets_pattern
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    for shape, repl in _SCRUB:
        text = shape.sub(repl, text)
    return text


class JsonFormatter(logging.Formatter):
    def __init__(self, process_name: str) -> None:
        super().__init__()
        self._process = process_name

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "process": self._process,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if request_id.get() and "request_id" not in vars(record):
            out["request_id"] = request_id.get()
        for key, value in vars(record).items():
            if key in _STANDARD or key.startswith("_"):
                continue
            if is_credential_name(key):
                out[key] = REDACTED
            elif isinstance(value, int | float | bool | None):
                out[key] = value
            else:
                out[key] = str(value)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        # Each value is scrubbed before JSON escapes it (a secret with a quote or a backslash
        # would otherwise slip through); the line as a whole once more after.
        out = {k: scrub(v) if isinstance(v, str) else v for k, v in out.items()}
        return scrub(json.dumps(out, default=str))


class TextFormatter(logging.Formatter):
    def __init__(self, process_name: str) -> None:
        super().__init__(f"%(asctime)s %(levelname)s {process_name} %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))


def configure(process_name: str, *, level: str = "INFO", fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter(process_name) if fmt == "json" else TextFormatter(process_name)
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiohttp.access", "sqlalchemy.engine", "alembic.runtime.migration"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
