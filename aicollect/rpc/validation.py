"""Checks every request of every RPC before any work starts, from its message descriptor.

One generic pass, run by the error-mapping interceptor for each call of each service: no
string anywhere in the request (nested messages, repeated fields and maps included) may
hold a NUL character (PostgreSQL's text refuses it, so it would otherwise surface as an
INTERNAL error half-way through the work), and no enum field may hold a number its enum
does not define (proto3 enums are open, so ``mode: 99`` would otherwise arrive as is and
be read as some default). Either is INVALID_ARGUMENT naming the field, like every other
validation (``ErrorInfo.metadata["field"]``).
"""

from __future__ import annotations

from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from aicollect.errors import InvalidArgument


def validate_request(request: object) -> None:
    """Raises InvalidArgument for the first NUL character or unknown enum value found."""
    if isinstance(request, Message):
        _walk(request, "")


def _walk(message: Message, prefix: str) -> None:
    for field, value in message.ListFields():  # only the fields that are set
        name = f"{prefix}{field.name}"
        entry = field.message_type
        if entry is not None and entry.GetOptions().map_entry:
            key_field, value_field = entry.fields_by_name["key"], entry.fields_by_name["value"]
            for key, item in value.items():
                _check(key_field, key, name)
                _check(value_field, item, f"{name}[{key}]")
        elif field.is_repeated:
            for i, item in enumerate(value):
                _check(field, item, f"{name}[{i}]")
        else:
            _check(field, value, name)


def _check(field: FieldDescriptor, value: Any, where: str) -> None:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        _walk(value, f"{where}.")
    elif field.type == FieldDescriptor.TYPE_STRING:
        if "\x00" in value:
            raise InvalidArgument(f"{where} must not contain NUL characters", field=where)
    elif field.type == FieldDescriptor.TYPE_ENUM and field.enum_type is not None:
        enum = field.enum_type
        if value not in enum.values_by_number:
            message = f"{where} is not a known {enum.name} value ({value})"
            raise InvalidArgument(message, field=where)
