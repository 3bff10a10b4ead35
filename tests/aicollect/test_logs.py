"""The log scrubber redacts secret values and credential fields, and keeps diagnostics."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from aicollect.logs import JsonFormatter, TextFormatter
from aicollect.settings import Settings

# Configured secrets of "this process". Settings registers them with the scrubber.
SECRETS = {
    "AICOLLECT_INTERNAL_TOKEN": "internal-token-for-the-log-tests-0001",
    "AICOLLECT_JWT_SECRET": "jwt-secret-for-the-log-tests-0002",
    "AICOLLECT_TOKEN_KEYS": "k2:KeyTwoForTheLogTests0003xyz,k1:KeyOneForTheLogTests0004xyz",
    "QBO_CLIENT_SECRET": 'client"secret\\for-the-log-tests-0005',  # JSON would escape it
    "QBO_WEBHOOK_VERIFIER_TOKEN": "verifier-token-for-the-log-tests-0006",
    "AICOLLECT_DATABASE_URL": "postgresql+asyncpg://app:db-password-for-the-log-tests-0007@db/x",
}
SECRET_VALUES = [
    "internal-token-for-the-log-tests-0001",
    "jwt-secret-for-the-log-tests-0002",
    "KeyTwoForTheLogTests0003xyz",
    "KeyOneForTheLogTests0004xyz",
    'client"secret\\for-the-log-tests-0005',
    "verifier-token-for-the-log-tests-0006",
    "db-password-for-the-log-tests-0007",
]


@pytest.fixture
def settings() -> Settings:
    return Settings.from_env(SECRETS)


@pytest.fixture(params=["json", "text"])
def captured(request: pytest.FixtureRequest) -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger whose lines are formatted by the project's formatter into a buffer."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        JsonFormatter("test") if request.param == "json" else TextFormatter("test")
    )
    logger = logging.getLogger(f"tests.logs.{request.param}")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield logger, stream
    finally:
        logger.removeHandler(handler)


def _upstream(credential: str) -> str:
    raise RuntimeError(f"upstream refused the call made with {credential}")


def _refresh_with(settings: Settings) -> None:
    assert settings.internal_token is not None
    token = _upstream(settings.internal_token.get_secret_value())
    assert token


def test_diagnostics_keep_their_values(
    settings: Settings, captured: tuple[logging.Logger, io.StringIO]
) -> None:
    logger, stream = captured
    try:
        _refresh_with(settings)
    except RuntimeError:
        logger.exception(
            "refresh failed (grpc_code=UNAVAILABLE)",
            extra={"grpc_code": "UNAVAILABLE", "intuit_tid": "1-6543-abc", "request_id": "r-42"},
        )
    logger.info('Intuit fault {"code": "6240", "Message": "Duplicate Name Exists Error"}')
    text = stream.getvalue()
    shown = text
    if isinstance(logger.handlers[0].formatter, JsonFormatter):
        lines = [json.loads(line) for line in text.splitlines()]
        assert lines[0]["grpc_code"] == "UNAVAILABLE"
        assert lines[0]["intuit_tid"] == "1-6543-abc"
        assert lines[0]["request_id"] == "r-42"
        shown = "\n".join(str(value) for line in lines for value in line.values())
    # The traceback's source line, the gRPC code and Intuit's fault code are all there.
    assert "token = _upstream(settings.internal_token.get_secret_value())" in shown
    assert "grpc_code=UNAVAILABLE" in shown
    assert '"code": "6240"' in shown
    # ... while the secret in the exception's message is not.
    assert "internal-token-for-the-log-tests-0001" not in text
    assert "upstream refused the call made with [REDACTED]" in shown


@pytest.mark.parametrize("secret", SECRET_VALUES)
def test_a_configured_secret_is_redacted_wherever_it_appears(
    settings: Settings, captured: tuple[logging.Logger, io.StringIO], secret: str
) -> None:
    logger, stream = captured
    logger.info(f"in the message: {secret}")
    logger.info("in the arguments: %s and %r", secret, {"nested": [secret]})
    logger.info("in an extra field", extra={"detail": f"see {secret}", "peer": [secret]})
    try:
        raise ValueError(f"in the exception: {secret}")
    except ValueError:
        logger.exception("failed")
    logger.info(
        "url-encoded: https://x.test/?q=%s", secret.replace("\\", "%5C").replace('"', "%22")
    )
    text = stream.getvalue()
    assert secret not in text
    assert secret.replace("\\", "\\\\").replace('"', '\\"') not in text  # nor JSON-escaped
    assert "%22secret%5Cfor" not in text
    assert text.count("[REDACTED]") >= 5  # (the text format shows no extra fields)


@pytest.mark.parametrize(
    ("line", "hidden"),
    [
        (
            'token reply {"access_token": "eyJ-at-1", "refresh_token": "AB11-rt-2"}',
            ["eyJ-at", "AB11-rt"],
        ),
        ("headers {'Authorization': 'Bearer eyJhbGci.e30.sig'}", ["eyJhbGci"]),
        ("Authorization: Basic QUJjbGllbnQ6c2VjcmV0", ["QUJjbGllbnQ6c2VjcmV0"]),
        (
            "GET /v1/integrations/qbo/callback?state=st-123&code=AB-code-9&realmId=42",
            ["st-123", "AB-code-9"],
        ),
        ("POST body grant_type=authorization_code&code=AB-code-9&redirect_uri=x", ["AB-code-9"]),
        ("revoke(token=rt-secret-77)", ["rt-secret-77"]),
        ("dsn postgresql://svc:hunter2-pw@db:5432/x", ["hunter2-pw"]),
    ],
)
def test_credential_fields_are_redacted_by_shape(
    captured: tuple[logging.Logger, io.StringIO], line: str, hidden: list[str]
) -> None:
    """Credentials this process was not configured with (Intuit's tokens, OAuth codes)."""
    logger, stream = captured
    logger.info(line)
    logger.info("as an extra field", extra={"access_token": hidden[0], "client_secret": hidden[0]})
    text = stream.getvalue()
    for value in hidden:
        assert value not in text
    assert "realmId=42" in text or "realmId" not in line


def test_a_json_line_stays_valid_json(settings: Settings) -> None:
    record = logging.LogRecord(
        "x", logging.INFO, __file__, 1, "tokens %s", ('{"access_token": "a\\"b"}',), None
    )
    record.client = 'client"secret\\for-the-log-tests-0005'
    line: dict[str, Any] = json.loads(JsonFormatter("test").format(record))
    assert line["message"] == 'tokens {"access_token": "[REDACTED]"}'
    assert line["client"] == "[REDACTED]"
