"""ISO 4217 minor units, shared by the integration (reading QBO amounts) and the matcher
(formatting money): one table, one place."""

from __future__ import annotations

# Currencies whose minor unit is not 1/100; every other code has two decimals.
_EXPONENTS: dict[str, int] = {
    **dict.fromkeys(
        (
            "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG",
            "RWF", "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF",
        ),
        0,
    ),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
    **dict.fromkeys(("CLF", "UYW"), 4),
}  # fmt: skip


def exponent(currency: str) -> int:
    """Decimal places of the currency's minor unit (2 unless ISO 4217 says otherwise)."""
    return _EXPONENTS.get(currency, 2)


def decimal_amount(minor_units: int, currency: str) -> str:
    """``12345, "USD"`` -> ``"123.45"``: minor units as a decimal, integer arithmetic only."""
    places = exponent(currency)
    sign = "-" if minor_units < 0 else ""
    units = abs(minor_units)
    if places == 0:
        return f"{sign}{units}"
    whole, fraction = divmod(units, 10**places)
    return f"{sign}{whole}.{fraction:0{places}d}"
