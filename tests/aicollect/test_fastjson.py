"""The hot paths' JSON decoder accepts and refuses exactly what the standard library does."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from aicollect import fastjson

SAME = [
    b'[{"specversion": "1.0", "id": "e1", "data": {"amount": 12.5, "n": 3}}]',
    b'{"QueryResponse": {"Invoice": [{"Id": "1", "Balance": 0.1, "Line": []}]}}',
    '{"memo": "caf\u00e9 \u2603"}'.encode(),
    b'{"amount": NaN, "other": -Infinity}',  # orjson refuses these; the standard library reads them
    b'["\\ud800"]',  # a lone surrogate, likewise
    b'"\\u0000"',
]


@pytest.mark.parametrize("body", SAME)
def test_decodes_as_the_standard_library(body: bytes) -> None:
    ours, theirs = fastjson.loads(body), json.loads(body)
    assert json.dumps(ours) == json.dumps(theirs)  # NaN != NaN: compare the text


def _error(decode: Callable[[bytes], object], body: bytes) -> str:
    try:
        decode(body)
    except ValueError as exc:  # json.JSONDecodeError, UnicodeDecodeError
        return f"{type(exc).__name__}: {exc}"
    raise AssertionError(f"{body!r} was accepted")


@pytest.mark.parametrize("body", [b"", b"{", b"<html>throttled</html>", b"\xff\xfe{}"])
def test_refuses_as_the_standard_library(body: bytes) -> None:
    assert _error(fastjson.loads, body) == _error(json.loads, body)


def test_nesting_too_deep_fails_as_before() -> None:
    body = b"[" * 50_000 + b"]" * 50_000
    with pytest.raises(RecursionError):
        json.loads(body)
    with pytest.raises(RecursionError):
        fastjson.loads(body)
