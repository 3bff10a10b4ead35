"""Intuit's query language, for the entities and fields the emulator serves.

``SELECT * | COUNT(*) FROM Entity [WHERE f op v [AND ...]] [ORDERBY f [ASC|DESC][, ...]]
[STARTPOSITION n] [MAXRESULTS n]`` with ``= < > <= >= IN LIKE``; AND only, as on Intuit.
``ORDER BY`` (two words, as python-quickbooks' ``all()`` writes it) is accepted too.

Results of a WHERE/ORDERBY are cached per company data version, so paging through a large
result set costs one filter-and-sort, then a slice per page.
"""

from __future__ import annotations

import operator
import re
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, tzinfo
from typing import Any, Final

from aicollect.emulator import money
from aicollect.emulator.books import Company
from aicollect.emulator.clock import parse_datetime
from aicollect.emulator.model import CREDIT_MEMO, CUSTOMER, INVOICE, PAYMENT, Entity

DEFAULT_MAX_RESULTS: Final = 100

# Entities QBO has that this emulator keeps no data for: queries on them return nothing.
EMPTY_ENTITIES: Final = frozenset(
    {
        "Account",
        "Bill",
        "BillPayment",
        "Budget",
        "Class",
        "CompanyCurrency",
        "Department",
        "Deposit",
        "Employee",
        "Estimate",
        "Item",
        "JournalEntry",
        "PaymentMethod",
        "Purchase",
        "PurchaseOrder",
        "RefundReceipt",
        "SalesReceipt",
        "TaxCode",
        "TaxRate",
        "Term",
        "TimeActivity",
        "Transfer",
        "Vendor",
        "VendorCredit",
    }
)


class QueryError(Exception):
    """Rendered as a 400 Fault with code 4001."""


@dataclass(frozen=True, slots=True)
class FieldSpec:
    name: str  # canonical spelling
    kind: str  # id, ref, money, date, datetime, str, bool
    getter: Callable[[Any], Any]


def _int_id(entity: Any) -> int:
    return int(entity.id)


def _updated(entity: Any) -> int:
    return int(entity.updated)


def _created(entity: Any) -> int:
    return int(entity.created)


def _total(entity: Any) -> int:
    return int(entity.total)


_COMMON: Final = (
    FieldSpec("Id", "id", _int_id),
    FieldSpec("MetaData.LastUpdatedTime", "datetime", _updated),
    FieldSpec("MetaData.CreateTime", "datetime", _created),
)
_TXN: Final = (
    FieldSpec("TxnDate", "date", operator.attrgetter("txn_date")),
    FieldSpec("CustomerRef", "ref", operator.attrgetter("customer_id")),
    FieldSpec("TotalAmt", "money", _total),
)
FIELDS: Final[dict[str, dict[str, FieldSpec]]] = {
    entity: {spec.name.lower(): spec for spec in specs}
    for entity, specs in {
        INVOICE: (
            *_COMMON,
            *_TXN,
            FieldSpec("Balance", "money", operator.attrgetter("balance")),
            FieldSpec("DueDate", "date", operator.attrgetter("due_date")),
            FieldSpec("DocNumber", "str", operator.attrgetter("doc_number")),
        ),
        CREDIT_MEMO: (
            *_COMMON,
            *_TXN,
            FieldSpec("Balance", "money", operator.attrgetter("remaining")),
            FieldSpec("RemainingCredit", "money", operator.attrgetter("remaining")),
            FieldSpec("DocNumber", "str", operator.attrgetter("doc_number")),
        ),
        PAYMENT: (
            *_COMMON,
            *_TXN,
            FieldSpec("PaymentRefNum", "str", operator.attrgetter("ref_num")),
        ),
        CUSTOMER: (
            *_COMMON,
            FieldSpec("Active", "bool", operator.attrgetter("active")),
            FieldSpec("Balance", "money", operator.attrgetter("balance")),
            FieldSpec("DisplayName", "str", operator.attrgetter("display_name")),
            FieldSpec("CompanyName", "str", operator.attrgetter("company_name")),
            FieldSpec("GivenName", "str", operator.attrgetter("given_name")),
            FieldSpec("FamilyName", "str", operator.attrgetter("family_name")),
            FieldSpec("PrimaryEmailAddr", "str", operator.attrgetter("email")),
        ),
    }.items()
}

_TOKEN: Final = re.compile(
    r"""\s*(?:
        (?P<str>'(?:[^'\\]|\\.)*')
      | (?P<num>-?\d+(?:\.\d+)?)
      | (?P<op><=|>=|!=|<>|=|<|>)
      | (?P<punct>[(),*])
      | (?P<word>[A-Za-z_][A-Za-z0-9_.]*)
    )""",
    re.VERBOSE,
)


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # str, num, op, punct, word
    text: str

    def is_word(self, *words: str) -> bool:
        return self.kind == "word" and self.text.upper() in words


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    text = text.rstrip().rstrip(";")
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise QueryError(f'QueryParserError: Encountered "{text[pos:].strip()[:20]}"')
        kind = match.lastgroup
        assert kind is not None
        value = match.group(kind)
        if kind == "str":
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        tokens.append(Token(kind, value))
        pos = match.end()
    return tokens


@dataclass(frozen=True, slots=True)
class Condition:
    field: FieldSpec
    op: str  # = < > <= >= IN LIKE
    value: Any  # coerced; a frozenset for IN, a compiled pattern for LIKE

    def key(self) -> tuple[str, str, str]:
        value = self.value
        if isinstance(value, frozenset):
            rendered = repr(sorted(value, key=repr))
        elif isinstance(value, re.Pattern):
            rendered = value.pattern
        else:
            rendered = repr(value)
        return (self.field.name, self.op, rendered)


@dataclass(frozen=True, slots=True)
class Query:
    entity: str
    count: bool
    where: tuple[Condition, ...]
    order: tuple[tuple[FieldSpec, bool], ...]  # (field, descending)
    start_position: int
    max_results: int

    def shape(self) -> tuple[Any, ...]:
        return (
            self.entity,
            tuple(c.key() for c in self.where),
            tuple((f.name, desc) for f, desc in self.order),
        )


class _Parser:
    def __init__(self, tokens: list[Token], tz: tzinfo, max_limit: int) -> None:
        self.tokens = tokens
        self.pos = 0
        self.tz = tz
        self.max_limit = max_limit

    def peek(self) -> Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> Token:
        token = self.peek()
        if token is None:
            raise QueryError("QueryParserError: Encountered end of statement")
        self.pos += 1
        return token

    def expect_word(self, *words: str) -> Token:
        token = self.take()
        if not token.is_word(*words):
            raise QueryError(f'QueryParserError: Encountered "{token.text}", expected {words[0]}')
        return token

    def expect_punct(self, char: str) -> None:
        token = self.take()
        if token.kind != "punct" or token.text != char:
            raise QueryError(f'QueryParserError: Encountered "{token.text}", expected "{char}"')

    def parse(self) -> Query:
        self.expect_word("SELECT")
        count = False
        token = self.take()
        if token.kind == "punct" and token.text == "*":
            pass
        elif token.is_word("COUNT"):
            self.expect_punct("(")
            self.expect_punct("*")
            self.expect_punct(")")
            count = True
        else:
            raise QueryError(
                f'QueryParserError: Encountered "{token.text}": only SELECT * and COUNT(*) are '
                "supported (no projections)"
            )
        self.expect_word("FROM")
        entity_token = self.take()
        if entity_token.kind != "word":
            raise QueryError(f'QueryParserError: Encountered "{entity_token.text}"')
        entity = entity_token.text
        fields = FIELDS.get(entity)
        if fields is None and entity not in EMPTY_ENTITIES:
            raise QueryError(f"QueryValidationError: Invalid entity name: {entity}")
        where: list[Condition] = []
        order: list[tuple[FieldSpec, bool]] = []
        start, limit = 1, DEFAULT_MAX_RESULTS
        seen: set[str] = set()
        while (nxt := self.peek()) is not None:
            token = nxt
            clause = token.text.upper() if token.kind == "word" else token.text
            if clause == "ORDER":
                self.take()
                self.expect_word("BY")
                clause = "ORDERBY"
            else:
                self.take()
            if clause in seen:
                raise QueryError(f"QueryParserError: {clause} given twice")
            seen.add(clause)
            if clause == "WHERE" and not order and "STARTPOSITION" not in seen:
                where = self.conditions(fields or {}, entity)
            elif clause == "ORDERBY":
                order = self.ordering(fields or {}, entity)
            elif clause == "STARTPOSITION":
                start = self.integer("STARTPOSITION")
            elif clause == "MAXRESULTS":
                limit = self.integer("MAXRESULTS")
                if limit > self.max_limit:
                    raise QueryError(
                        f"QueryValidationError: value {limit} is too large. "
                        f"Max allowed value is {self.max_limit}"
                    )
            else:
                raise QueryError(f'QueryParserError: Encountered "{token.text}"')
        return Query(entity, count, tuple(where), tuple(order), start, limit)

    def integer(self, clause: str) -> int:
        token = self.take()
        if token.kind not in {"num", "str"} or not token.text.isdigit():
            raise QueryError(f'QueryParserError: {clause} needs a number, not "{token.text}"')
        value = int(token.text)
        if value < 1:
            raise QueryError(
                f"QueryValidationError: value {value} is too small. Min allowed value is 1"
            )
        return value

    def field(self, fields: dict[str, FieldSpec], entity: str) -> FieldSpec:
        token = self.take()
        if token.kind != "word":
            raise QueryError(f'QueryParserError: Encountered "{token.text}", expected a property')
        spec = fields.get(token.text.lower())
        if spec is None:
            raise _not_queryable(token.text, entity)
        return spec

    def conditions(self, fields: dict[str, FieldSpec], entity: str) -> list[Condition]:
        out = [self.condition(fields, entity)]
        while (token := self.peek()) is not None and token.is_word("AND", "OR"):
            if token.is_word("OR"):
                raise QueryError('QueryParserError: Encountered " "OR" ": OR is not supported')
            self.take()
            out.append(self.condition(fields, entity))
        return out

    def condition(self, fields: dict[str, FieldSpec], entity: str) -> Condition:
        spec = self.field(fields, entity)
        token = self.take()
        if token.kind == "op":
            if token.text in {"!=", "<>"}:
                raise QueryError(f'QueryParserError: Encountered "{token.text}"')
            return Condition(spec, token.text, self.coerce(spec, self.literal()))
        if token.is_word("IN"):
            self.expect_punct("(")
            values = [self.coerce(spec, self.literal())]
            while (nxt := self.take()).kind == "punct" and nxt.text == ",":
                values.append(self.coerce(spec, self.literal()))
            if nxt.text != ")":
                raise QueryError(f'QueryParserError: Encountered "{nxt.text}", expected ")"')
            return Condition(spec, "IN", frozenset(values))
        if token.is_word("LIKE"):
            if spec.kind != "str":
                raise QueryError(f"QueryValidationError: LIKE is not supported on {spec.name}")
            pattern = self.literal()
            regex = "".join(".*" if ch == "%" else re.escape(ch) for ch in pattern)
            return Condition(spec, "LIKE", re.compile(f"^{regex}$", re.IGNORECASE | re.DOTALL))
        raise QueryError(f'QueryParserError: Encountered "{token.text}", expected an operator')

    def literal(self) -> str:
        token = self.take()
        if token.kind in {"str", "num"} or token.is_word("TRUE", "FALSE"):
            return token.text
        raise QueryError(f'QueryParserError: Encountered "{token.text}", expected a value')

    def coerce(self, spec: FieldSpec, text: str) -> Any:
        try:
            if spec.kind == "id":
                return int(text)
            if spec.kind == "money":
                return money.parse_amount(text)
            if spec.kind == "date":
                return date.fromisoformat(text[:10]).isoformat()
            if spec.kind == "datetime":
                return int(parse_datetime(text, self.tz))
            if spec.kind == "bool":
                if text.lower() not in {"true", "false"}:
                    raise ValueError(text)
                return text.lower() == "true"
        except ValueError as exc:
            raise QueryError(
                f"QueryValidationError: invalid value '{text}' for property {spec.name}"
            ) from exc
        return text

    def ordering(self, fields: dict[str, FieldSpec], entity: str) -> list[tuple[FieldSpec, bool]]:
        out: list[tuple[FieldSpec, bool]] = []
        while True:
            spec = self.field(fields, entity)
            descending = False
            token = self.peek()
            if token is not None and token.is_word("ASC", "DESC"):
                descending = self.take().text.upper() == "DESC"
            out.append((spec, descending))
            token = self.peek()
            if token is None or not (token.kind == "punct" and token.text == ","):
                return out
            self.take()


def _not_queryable(prop: str, entity: str) -> QueryError:
    return QueryError(f"QueryValidationError: property '{prop}' is not queryable on {entity}")


def parse(text: str, tz: tzinfo, max_limit: int = 1000) -> Query:
    return _Parser(tokenize(text), tz, max_limit).parse()


_OPS: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "=": operator.eq,
    "<": operator.lt,
    ">": operator.gt,
    "<=": operator.le,
    ">=": operator.ge,
}


def _filter(rows: list[Any], cond: Condition) -> list[Any]:
    get = cond.field.getter
    value = cond.value
    if cond.op == "IN":
        return [r for r in rows if get(r) in value]
    if cond.op == "LIKE":
        match = value.match
        return [r for r in rows if match(get(r)) is not None]
    if cond.field.kind == "ref":
        # References compare as the numeric ids they are.
        value = str(value)
        if cond.op == "=":
            return [r for r in rows if get(r) == value]
        op = _OPS[cond.op]
        number = int(value) if value.isdigit() else value
        return [r for r in rows if op(int(get(r)), number)]
    op = _OPS[cond.op]
    return [r for r in rows if op(get(r), value)]


def _sort_key(spec: FieldSpec) -> Callable[[Any], Any]:
    getter = spec.getter
    if spec.kind == "ref":
        return lambda row: int(getter(row))
    if spec.kind == "str":
        return lambda row: getter(row).lower()
    return getter


class QueryCache:
    """The sorted result of recent WHERE/ORDERBY shapes, valid for one data version."""

    def __init__(self, size: int = 32) -> None:
        self.size = size
        self._entries: OrderedDict[tuple[Any, ...], tuple[int, list[Any]]] = OrderedDict()

    def get(self, key: tuple[Any, ...], version: int) -> list[Any] | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] != version:
            return None
        self._entries.move_to_end(key)
        return entry[1]

    def put(self, key: tuple[Any, ...], version: int, rows: list[Any]) -> None:
        self._entries[key] = (version, rows)
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()


def matching_rows(company: Company, query: Query, cache: QueryCache) -> Sequence[Entity]:
    """All rows that match, in result order (cached)."""
    if query.entity not in FIELDS:
        return []
    key = (company.realm_id, *query.shape())
    rows = cache.get(key, company.version)
    if rows is not None:
        return rows
    table = company.table(query.entity)
    # Tables are in creation order, which is ascending Id: the default order, and the
    # tie-breaker for a stable ORDERBY.  ``Id =`` and ``Id IN`` look rows up directly.
    by_id = next((c for c in query.where if c.field.name == "Id" and c.op in {"=", "IN"}), None)
    if by_id is None:
        rows = list(table.values())
    else:
        wanted = by_id.value if by_id.op == "IN" else frozenset({by_id.value})
        rows = [table[str(i)] for i in sorted(wanted) if str(i) in table]
    for cond in sorted(query.where, key=lambda c: c.op != "IN"):
        rows = _filter(rows, cond)
    for spec, descending in reversed(query.order):
        rows.sort(key=_sort_key(spec), reverse=descending)
    cache.put(key, company.version, rows)
    return rows


@dataclass(frozen=True, slots=True)
class QueryResult:
    entity: str
    count: int | None  # for COUNT(*)
    rows: Sequence[Entity]
    start_position: int


def execute(company: Company, query: Query, cache: QueryCache) -> QueryResult:
    rows = matching_rows(company, query, cache)
    if query.count:
        return QueryResult(query.entity, len(rows), (), query.start_position)
    first = query.start_position - 1
    return QueryResult(
        query.entity, None, rows[first : first + query.max_results], query.start_position
    )
