"""Money as integer cents.

Balances are only ever added and subtracted as ``int`` cents.  They become JSON numbers at
the very last step, the way the providers write them (``362.07``, ``275.0``): ``cents / 100`` is a
correctly rounded division of two integers, so the shortest ``repr`` of the result is the
exact two-decimal amount and never something like ``0.30000000000000004``.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

CENT = Decimal("0.01")


class AmountError(ValueError):
    """An amount that is not a number with at most two decimals."""


def parse_amount(value: object) -> int:
    """Parse ``12``, ``12.5``, ``"12.50"`` or ``Decimal("12.5")`` into cents.

    Floats are read through ``repr`` so ``0.1`` means ten cents, not the binary value.
    """
    if isinstance(value, bool):
        raise AmountError(f"not an amount: {value!r}")
    if isinstance(value, int):
        return value * 100
    if isinstance(value, float):
        text = repr(value)
    elif isinstance(value, Decimal):
        text = str(value)
    elif isinstance(value, str):
        text = value.strip()
    else:
        raise AmountError(f"not an amount: {value!r}")
    try:
        amount = Decimal(text)
    except InvalidOperation as exc:
        raise AmountError(f"not an amount: {value!r}") from exc
    if not amount.is_finite():
        raise AmountError(f"not an amount: {value!r}")
    if amount != amount.quantize(CENT):
        raise AmountError(f"more than two decimals: {value!r}")
    return int(amount * 100)


def to_json(cents: int) -> float:
    """The JSON number Intuit and Xero would write for ``cents``."""
    return cents / 100


def to_text(cents: int) -> str:
    """``"71.00"``: the string form Intuit uses inside ``LineEx`` name/value pairs."""
    sign = "-" if cents < 0 else ""
    whole, frac = divmod(abs(cents), 100)
    return f"{sign}{whole}.{frac:02d}"


def convert(cents: int, rate: Decimal) -> int:
    """``cents`` in a foreign currency times ``rate`` (home units per foreign unit), half-up."""
    return int((Decimal(cents) * rate).quantize(Decimal(1), rounding=ROUND_HALF_UP))
