"""Intuit's query language, for the entities and fields the emulator serves.

``SELECT * | COUNT(*) FROM Entity [WHERE f op v [AND ...]] [ORDERBY f [ASC|DESC][, ...]]
[STARTPOSITION n] [MAXRESULTS n]`` with ``= < > <= >= IN LIKE``; AND only, as on Intuit.
``ORDER BY`` (two words, as python-quickbooks' ``all()`` writes it) is accepted too, and so
is a select list (``SELECT *, Sku``, ``SELECT Id, DisplayName``): Intuit does not project,
every property comes back.

What Intuit does, and so the emulator:

* Name-list entities (here ``Customer``) answer active rows only unless the WHERE clause
  names ``Active`` (``Active IN (true, false)`` for all, ``Active = false`` for inactive).
* A syntax error is a 4000 "Error parsing query" (``QueryParserError``); a valid sentence
  Intuit refuses is a 4001 "Invalid query" (``QueryValidationError``), e.g. ``Metadata not
  found for Entity: Foo`` for a name that is no QBO entity (names are case-sensitive).
* QBO entities the emulator keeps no data for (``Item``, ``Account``, ...) behave as in a
  company that has none: every query is empty, ``COUNT(*)`` is 0, any property may be named.

Results of a WHERE/ORDERBY are cached per company data version, so paging through a large
result set costs one filter-and-sort, then a slice per page.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, tzinfo
from typing import Any, Final

from emulators.common import money
from emulators.qbo.books import Company
from emulators.qbo.clock import parse_datetime
from emulators.qbo.model import CREDIT_MEMO, CUSTOMER, INVOICE, PAYMENT, Entity

DEFAULT_MAX_RESULTS: Final = 100

# Entities QBO has that this emulator keeps no data for: queries on them return nothing.
EMPTY_ENTITIES: Final = frozenset(
    {
        "Account",
        "Attachable",
        "Bill",
        "BillPayment",
        "Budget",
        "Class",
        "CompanyCurrency",
        "CreditCardPayment",
        "Department",
        "Deposit",
        "Employee",
        "Estimate",
        "Item",
        "JournalCode",
        "JournalEntry",
        "PaymentMethod",
        "Purchase",
        "PurchaseOrder",
        "RecurringTransaction",
        "RefundReceipt",
        "SalesReceipt",
        "TaxAgency",
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
    """Rendered as a 400 Fault: code 4000 for a ``QueryParserError``, else 4001."""


@dataclass(frozen=True, slots=True)
class FieldSpec:
    name: str  # canonical spelling
    kind: str  # id, ref, money, date, datetime, str, bool; any: a property of an entity
    # the emulator keeps no data for (accepted, never evaluated)
    expr: str  # how to read it from an entity ``r``: a fixed expression, never user input
    getter: Callable[[Any], Any]


def _spec(name: str, kind: str, expr: str) -> FieldSpec:
    return FieldSpec(name, kind, expr, _compile(f"lambda r: {expr}"))


def _compile(source: str) -> Callable[..., Any]:
    """Compile one of this module's own lambda templates (no user text reaches here)."""
    code = compile(source, "<qbo-query>", "eval")
    function: Callable[..., Any] = eval(code, {"__builtins__": {}, "int": int})  # noqa: S307
    return function


_COMMON: Final = (
    _spec("Id", "id", "int(r.id)"),
    _spec("MetaData.LastUpdatedTime", "datetime", "int(r.updated)"),
    _spec("MetaData.CreateTime", "datetime", "int(r.created)"),
)
_TXN: Final = (
    _spec("TxnDate", "date", "r.txn_date"),
    _spec("CustomerRef", "ref", "r.customer_id"),
    _spec("TotalAmt", "money", "r.total"),
)
FIELDS: Final[dict[str, dict[str, FieldSpec]]] = {
    entity: {spec.name.lower(): spec for spec in specs}
    for entity, specs in {
        INVOICE: (
            *_COMMON,
            *_TXN,
            _spec("Balance", "money", "r.balance"),
            _spec("DueDate", "date", "r.due_date"),
            _spec("DocNumber", "str", "r.doc_number"),
        ),
        CREDIT_MEMO: (
            *_COMMON,
            *_TXN,
            _spec("Balance", "money", "r.remaining"),
            _spec("RemainingCredit", "money", "r.remaining"),
            _spec("DocNumber", "str", "r.doc_number"),
        ),
        PAYMENT: (*_COMMON, *_TXN, _spec("PaymentRefNum", "str", "r.ref_num")),
        CUSTOMER: (
            *_COMMON,
            _spec("Active", "bool", "r.active"),
            _spec("Balance", "money", "r.balance"),
            _spec("DisplayName", "str", "r.display_name"),
            _spec("CompanyName", "str", "r.company_name"),
            _spec("GivenName", "str", "r.given_name"),
            _spec("FamilyName", "str", "r.family_name"),
            _spec("PrimaryEmailAddr", "str", "r.email"),
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
        count = self.select_list()
        self.expect_word("FROM")
        entity_token = self.take()
        if entity_token.kind != "word":
            raise QueryError(f'QueryParserError: Encountered "{entity_token.text}"')
        entity = entity_token.text
        fields = FIELDS.get(entity)
        if fields is None and entity not in EMPTY_ENTITIES:
            raise unknown_entity(entity)
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
                where = self.conditions(fields, entity)
            elif clause == "ORDERBY":
                order = self.ordering(fields, entity)
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
        active = (fields or {}).get("active")
        if active is not None and not any(c.field is active for c in where):
            # Intuit's default for name lists: active rows only, unless Active is named.
            where.append(Condition(active, "=", True))
        return Query(entity, count, tuple(where), tuple(order), start, limit)

    def select_list(self) -> bool:
        """``*``, ``COUNT(*)`` or properties (``*, Sku``; ``Id, Name``); True for COUNT.

        Named properties are accepted and change nothing: Intuit always returns every
        property ("projections are not supported").
        """
        token = self.take()
        if token.is_word("COUNT"):
            self.expect_punct("(")
            self.expect_punct("*")
            self.expect_punct(")")
            return True
        while True:
            if not (token.kind == "punct" and token.text == "*") and (
                token.kind != "word" or token.is_word("FROM")
            ):
                raise QueryError(
                    f'QueryParserError: Encountered "{token.text}", expected * or a property'
                )
            nxt = self.peek()
            if nxt is None or not (nxt.kind == "punct" and nxt.text == ","):
                return False
            self.take()
            token = self.take()

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

    def field(self, fields: dict[str, FieldSpec] | None, entity: str) -> FieldSpec:
        """A property of ``entity``; ``fields`` None: an entity without data, where any
        property name is accepted (there is no row for it to filter)."""
        token = self.take()
        if token.kind != "word":
            raise QueryError(f'QueryParserError: Encountered "{token.text}", expected a property')
        if fields is None:
            return FieldSpec(token.text, "any", "None", _none)
        spec = fields.get(token.text.lower())
        if spec is None:
            raise _not_queryable(token.text, entity)
        return spec

    def conditions(self, fields: dict[str, FieldSpec] | None, entity: str) -> list[Condition]:
        out = [self.condition(fields, entity)]
        while (token := self.peek()) is not None and token.is_word("AND", "OR"):
            if token.is_word("OR"):
                raise QueryError('QueryParserError: Encountered " "OR" ": OR is not supported')
            self.take()
            out.append(self.condition(fields, entity))
        return out

    def condition(self, fields: dict[str, FieldSpec] | None, entity: str) -> Condition:
        spec = self.field(fields, entity)
        token = self.take()
        if token.kind == "op":
            if token.text in {"!=", "<>"}:
                raise QueryError(f'QueryParserError: Encountered "{token.text}"')
            value = self.coerce(spec, self.literal())
            if spec.kind == "ref" and token.text != "=" and not str(value).isdigit():
                raise QueryError(f"QueryValidationError: {spec.name} {token.text} needs an id")
            return Condition(spec, token.text, value)
        if token.is_word("IN"):
            self.expect_punct("(")
            values = [self.coerce(spec, self.literal())]
            while (nxt := self.take()).kind == "punct" and nxt.text == ",":
                values.append(self.coerce(spec, self.literal()))
            if nxt.text != ")":
                raise QueryError(f'QueryParserError: Encountered "{nxt.text}", expected ")"')
            return Condition(spec, "IN", frozenset(values))
        if token.is_word("LIKE"):
            if spec.kind not in {"str", "any"}:
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

    def ordering(
        self, fields: dict[str, FieldSpec] | None, entity: str
    ) -> list[tuple[FieldSpec, bool]]:
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


def unknown_entity(name: str) -> QueryError:
    """Intuit's answer for a name that is no QBO entity (in a query or a CDC request)."""
    return QueryError(f"QueryValidationError: Metadata not found for Entity: {name}")


def _none(row: Any) -> None:
    return None


def parse(text: str, tz: tzinfo, max_limit: int = 1000) -> Query:
    return _Parser(tokenize(text), tz, max_limit).parse()


_OP_SOURCE: Final = {"=": "==", "<": "<", ">": ">", "<=": "<=", ">=": ">="}
_FILTERS: dict[tuple[tuple[str, str], ...], Callable[..., list[Any]]] = {}


def _filter_function(where: tuple[Condition, ...]) -> Callable[..., list[Any]]:
    """One list comprehension testing every condition, compiled once per query shape.

    The source is built from the fields' fixed expressions and fixed operators; the values
    are passed as arguments.  One pass with plain attribute reads is about twice as fast
    as a pass per condition through getters, which matters at 100,000 invoices.
    """
    shape = tuple((c.field.expr, c.op) for c in where)
    function = _FILTERS.get(shape)
    if function is None:
        tests = []
        for n, cond in enumerate(where):
            expr = cond.field.expr
            if cond.op == "IN":
                tests.append(f"{expr} in v{n}")
            elif cond.op == "LIKE":
                tests.append(f"v{n}({expr}) is not None")
            elif cond.field.kind == "ref" and cond.op != "=":
                tests.append(f"int({expr}) {_OP_SOURCE[cond.op]} v{n}")
            else:
                tests.append(f"{expr} {_OP_SOURCE[cond.op]} v{n}")
        params = "".join(f", v{n}" for n in range(len(where)))
        function = _compile(f"lambda rows{params}: [r for r in rows if {' and '.join(tests)}]")
        _FILTERS[shape] = function
    return function


def _argument(cond: Condition) -> Any:
    if cond.op == "LIKE":
        return cond.value.match
    if cond.field.kind == "ref" and cond.op not in {"=", "IN"}:
        return int(cond.value)
    return cond.value


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
    if query.where:
        rows = _filter_function(query.where)(rows, *(_argument(c) for c in query.where))
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
