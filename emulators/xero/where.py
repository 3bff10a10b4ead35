"""Xero's ``where`` and ``order`` parameters, evaluated over the records' JSON.

``where`` is a small C#-like expression: ``Type=="ACCREC" AND Status=="AUTHORISED"``,
``AmountDue > 0``, ``DueDate < DateTime(2026, 01, 31)``,
``Contact.ContactID == Guid("...")``, ``Name.Contains("Ltd")``, ``EmailAddress != null``,
``AND``/``OR`` (also ``&&``/``||``), ``NOT``/``!`` and parentheses.  Field names are
dotted paths into the record, case-insensitive.  ``order`` is ``Field [ASC|DESC][, ...]``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

Record = dict[str, Any]
Predicate = Callable[[Record], bool]

_MS_DATE: Final = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")
_TOKEN: Final = re.compile(
    r"""\s*(?:
    (?P<string>"(?:[^"\\]|\\.)*")
    |(?P<number>-?\d+(?:\.\d+)?)
    |(?P<op>==|!=|<=|>=|&&|\|\||<|>|!|\(|\)|,|\.)
    |(?P<name>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.VERBOSE,
)


def _contains(a: Any, b: str) -> bool:
    return isinstance(a, str) and b.lower() in a.lower()


def _starts(a: Any, b: str) -> bool:
    return isinstance(a, str) and a.lower().startswith(b.lower())


def _ends(a: Any, b: str) -> bool:
    return isinstance(a, str) and a.lower().endswith(b.lower())


_METHODS: Final[dict[str, Callable[[Any, str], bool]]] = {
    "contains": _contains,
    "startswith": _starts,
    "endswith": _ends,
}


_COMPARISONS: Final = ("==", "!=", "<", ">", "<=", ">=")


class WhereError(ValueError):
    """A ``where`` or ``order`` Xero would answer with a 400 QueryParseException."""


@dataclass(frozen=True, slots=True)
class Token:
    kind: str
    text: str


def _tokens(text: str) -> list[Token]:
    out: list[Token] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise WhereError(f"Unexpected character at position {pos}: {text[pos : pos + 10]!r}")
        kind = match.lastgroup
        assert kind is not None
        out.append(Token(kind, match.group(kind)))
        pos = match.end()
    return out


def comparable(value: Any) -> Any:
    """A JSON value as it compares: ``/Date(...)/`` becomes epoch milliseconds."""
    if isinstance(value, str):
        match = _MS_DATE.match(value)
        if match:
            return int(match.group(1))
    return value


def lookup(record: Record, path: tuple[str, ...]) -> Any:
    value: Any = record
    for part in path:
        if not isinstance(value, dict):
            return None
        found = None
        for key, item in value.items():
            if key.lower() == part:
                found = item
                break
        value = found
    return comparable(value)


def _compare(op: str, left: Any, right: Any) -> bool:
    if op == "==":
        if isinstance(left, str) and isinstance(right, str):
            return left.lower() == right.lower()
        return bool(left == right)
    if op == "!=":
        if isinstance(left, str) and isinstance(right, str):
            return left.lower() != right.lower()
        return bool(left != right)
    if left is None or right is None:
        return False
    try:
        if op == "<":
            return bool(left < right)
        if op == ">":
            return bool(left > right)
        if op == "<=":
            return bool(left <= right)
        return bool(left >= right)
    except TypeError:
        return False


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.pos = 0

    def peek(self) -> Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> Token:
        token = self.peek()
        if token is None:
            raise WhereError("Unexpected end of expression")
        self.pos += 1
        return token

    def expect(self, text: str) -> None:
        token = self.take()
        if token.text != text:
            raise WhereError(f"Expected {text!r} but found {token.text!r}")

    def keyword(self, *words: str) -> bool:
        token = self.peek()
        if token is not None and token.text.upper() in words:
            self.pos += 1
            return True
        return False

    def parse(self) -> Predicate:
        predicate = self.disjunction()
        if self.peek() is not None:
            raise WhereError(f"Unexpected {self.take().text!r}")
        return predicate

    def disjunction(self) -> Predicate:
        parts = [self.conjunction()]
        while self.keyword("OR", "||"):
            parts.append(self.conjunction())
        if len(parts) == 1:
            return parts[0]
        return lambda r: any(p(r) for p in parts)

    def conjunction(self) -> Predicate:
        parts = [self.negation()]
        while self.keyword("AND", "&&"):
            parts.append(self.negation())
        if len(parts) == 1:
            return parts[0]
        return lambda r: all(p(r) for p in parts)

    def negation(self) -> Predicate:
        if self.keyword("NOT", "!"):
            inner = self.negation()
            return lambda r: not inner(r)
        token = self.peek()
        if token is not None and token.text == "(":
            self.take()
            inner = self.disjunction()
            self.expect(")")
            return inner
        return self.comparison()

    def path(self) -> tuple[tuple[str, ...], str | None]:
        """A dotted field path, and a string method called on it (``.Contains``)."""
        token = self.take()
        if token.kind != "name":
            raise WhereError(f"Expected a field name but found {token.text!r}")
        parts = [token.text.lower()]
        while (nxt := self.peek()) is not None and nxt.text == ".":
            self.take()
            name = self.take()
            if name.kind != "name":
                raise WhereError(f"Expected a field name after '.' but found {name.text!r}")
            lowered = name.text.lower()
            if lowered in _METHODS:
                return tuple(parts), lowered
            parts.append(lowered)
        return tuple(parts), None

    def value(self) -> Any:
        token = self.take()
        if token.kind == "string":
            return token.text[1:-1].replace('\\"', '"')
        if token.kind == "number":
            return float(token.text) if "." in token.text else int(token.text)
        word = token.text.lower()
        if word in ("true", "false"):
            return word == "true"
        if word == "null":
            return None
        if word == "guid":
            self.expect("(")
            inner = self.take()
            if inner.kind != "string":
                raise WhereError("Guid() takes a quoted string")
            self.expect(")")
            return inner.text[1:-1]
        if word == "datetime":
            self.expect("(")
            numbers = [int(self.take().text)]
            while (nxt := self.peek()) is not None and nxt.text == ",":
                self.take()
                numbers.append(int(self.take().text))
            self.expect(")")
            if not 3 <= len(numbers) <= 6:
                raise WhereError("DateTime() takes year, month, day [, hour, minute, second]")
            try:
                parts = numbers + [0] * (6 - len(numbers))
                y, mo, d, h, mi, sec = parts
                moment = datetime(y, mo, d, h, mi, sec, tzinfo=UTC)
            except (TypeError, ValueError) as exc:
                raise WhereError(f"invalid DateTime: {exc}") from exc
            return int(moment.timestamp() * 1000)
        raise WhereError(f"Expected a value but found {token.text!r}")

    def comparison(self) -> Predicate:
        path, method = self.path()
        if method is not None:
            self.expect("(")
            argument = self.value()
            self.expect(")")
            if not isinstance(argument, str):
                raise WhereError(f"{method}() takes a quoted string")
            check = _METHODS[method]
            return lambda r: bool(check(lookup(r, path), argument))
        token = self.peek()
        if (
            token is None
            or token.kind != "op"
            or token.text not in ("==", "!=", "<", ">", "<=", ">=")
        ):
            # A bare boolean field: ``IsCustomer``.
            return lambda r: lookup(r, path) is True
        op = self.take().text
        right = self.value()
        return lambda r: _compare(op, lookup(r, path), right)


def parse_where(text: str) -> Predicate:
    return _Parser(text).parse()


def parse_order(text: str) -> list[tuple[tuple[str, ...], bool]]:
    """``[(path, descending)]`` for ``Field [ASC|DESC], ...``."""
    out: list[tuple[tuple[str, ...], bool]] = []
    for part in text.split(","):
        words = part.split()
        if not words or len(words) > 2:
            raise WhereError(f"invalid order {part.strip()!r}")
        direction = words[1].upper() if len(words) == 2 else "ASC"
        if direction not in ("ASC", "DESC"):
            raise WhereError(f"invalid order direction {words[1]!r}")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", words[0]):
            raise WhereError(f"invalid order field {words[0]!r}")
        out.append((tuple(words[0].lower().split(".")), direction == "DESC"))
    return out


def sort_records(records: list[Record], order: list[tuple[tuple[str, ...], bool]]) -> None:
    """Stable multi-key sort; missing values sort first."""
    for path, descending in reversed(order):

        def key(record: Record, path: tuple[str, ...] = path) -> tuple[int, Any]:
            value = lookup(record, path)
            if value is None:
                return (0, 0)
            if isinstance(value, str):
                return (1, value.lower())
            return (1, value)

        records.sort(key=key, reverse=descending)
