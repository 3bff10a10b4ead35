"""Xero's error bodies: the identity "problem" shape (401/403/404 before the books), the
Accounting API's exceptions (400 ValidationException, QueryParseException) and its plain
404."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from emulators.common.http import dumps, raw_json


def problem(status: int, title: str, detail: str) -> web.Response:
    body: dict[str, Any] = {
        "Type": None,
        "Title": title,
        "Status": status,
        "Detail": detail,
        "Extensions": {},
    }
    return raw_json(dumps(body), status)


def exception(status: int, error_number: int, kind: str, message: str) -> web.Response:
    body = {"ErrorNumber": error_number, "Type": kind, "Message": message}
    return raw_json(dumps(body), status)


def validation_error(message: str) -> web.Response:
    body = {
        "ErrorNumber": 10,
        "Type": "ValidationException",
        "Message": "A validation exception occurred",
        "Elements": [{"ValidationErrors": [{"Message": message}]}],
    }
    return raw_json(dumps(body), 400)


def not_found() -> web.Response:
    return web.Response(
        status=404, text="The resource you're looking for cannot be found", content_type="text/html"
    )
