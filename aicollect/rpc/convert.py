"""Small conversions between Python values and protobuf well-known types."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.timestamp_pb2 import Timestamp

from aicollect.errors import InvalidArgument


def timestamp(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    ts = Timestamp()
    ts.FromDatetime(value if value.tzinfo else value.replace(tzinfo=UTC))
    return ts


def from_timestamp(ts: Timestamp) -> datetime:
    return ts.ToDatetime(tzinfo=UTC)


def update_paths(mask: FieldMask, allowed: frozenset[str]) -> list[str]:
    """The explicit paths of an update mask; empty, ``*`` or unknown paths are refused."""
    paths = list(dict.fromkeys(mask.paths))
    if not paths:
        raise InvalidArgument("update_mask must name the fields to change", field="update_mask")
    unknown = [p for p in paths if p not in allowed]
    if unknown:
        raise InvalidArgument(
            f"update_mask names fields that cannot be updated: {', '.join(unknown)}; "
            f"allowed: {', '.join(sorted(allowed))}",
            field="update_mask",
        )
    return paths
