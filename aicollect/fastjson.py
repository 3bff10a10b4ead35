"""Decoding JSON on the hot paths (webhook bodies, Intuit's replies): orjson, several
times faster than the standard library's ``json``, same results.

One place, so every hot path decodes the same way. orjson is stricter than the standard
library: it refuses ``NaN``/``Infinity``, lone surrogates (``"\\ud800"``) and nesting past
1,024 levels. Whatever orjson refuses is handed to the standard library, so every input is
accepted or refused exactly as before (and fails the same way: ``ValueError``,
``RecursionError``); only well-formed, ordinary JSON, the hot path's, takes the fast road.
The one difference left: an integer literal past 64 bits is decoded by orjson as a float
(Intuit sends ids as strings and amounts as decimals, so nothing we read carries one).

Encoding stays with the standard library where the exact text matters: orjson writes
``NaN`` as ``null``, where the inbox must see (and dead-letter) what PostgreSQL refuses.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def loads(data: bytes | str) -> Any:
    """Decodes JSON; raises ValueError (or RecursionError) as ``json.loads`` would."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)
