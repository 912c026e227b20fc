"""Request-body validation with each family's error wording.

A small declarative table per endpoint, not pydantic models: the point of the reference gateway is
to answer bad input exactly as the upstream APIs do (400 with the family's message style, the
offending parameter named), and to accept every parameter the real APIs accept even where the fake
model ignores it, so real clients pointed at it keep working.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, NoReturn

from gateprobe.reference.envelopes import Family, GatewayError

JsonType = Literal["string", "integer", "number", "boolean", "array", "object", "null"]


@dataclass(frozen=True, slots=True)
class Field:
    """One top-level body field and its documented constraints."""

    name: str
    types: tuple[JsonType, ...]
    required: bool = False
    ge: float | None = None
    le: float | None = None
    enum: tuple[str, ...] | None = None
    min_len: int | None = None
    """Least length of a string."""
    max_len: int | None = None
    """Greatest length of a string."""
    min_items: int | None = None
    """Least number of items of an array."""
    max_items: int | None = None
    """Greatest number of items of an array."""
    item_enum: tuple[str, ...] | None = None
    """The values each item of an array may take."""


def f(name: str, *types: JsonType, **kw: Any) -> Field:
    """Shorthand for a table row."""
    return Field(name, types, **kw)


def type_of(value: object) -> JsonType:
    """The JSON type name of a decoded value (booleans are not integers)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _matches(value: object, types: Sequence[JsonType]) -> bool:
    actual = type_of(value)
    return actual in types or (actual == "integer" and "number" in types)


def check_body(
    family: Family, body: Mapping[str, Any], fields: Sequence[Field], where: str = ""
) -> None:
    """Raise the family's 400 for the first field that breaks its constraints.

    Unknown fields are refused, as both upstream APIs refuse them. ``where`` prefixes the names
    in messages for nested objects (``messages.0.``).
    """
    known = {fd.name for fd in fields}
    if where:
        body = {where + k: v for k, v in body.items()}
        fields = [replace(fd, name=where + fd.name) for fd in fields]
        known = {where + k for k in known}
    for name in body:
        if name not in known:
            invalid(
                family,
                name,
                f"Unrecognized request argument supplied: {name}",
                f"{name}: Extra inputs are not permitted",
            )
    for fd in fields:
        if fd.name not in body:
            if fd.required:
                invalid(
                    family,
                    fd.name,
                    f"Missing required parameter: '{fd.name}'.",
                    f"{fd.name}: Field required",
                )
            continue
        check_value(family, fd, body[fd.name])


def check_value(family: Family, fd: Field, value: Any) -> None:
    """Check one value against its field's type, range, enum and length."""
    if not _matches(value, fd.types):
        want = " or ".join(_article(t) for t in fd.types)
        invalid(
            family,
            fd.name,
            f"Invalid type for '{fd.name}': expected {want}, but got {_article(type_of(value))}"
            " instead.",
            f"{fd.name}: Input should be {want}",
        )
    if isinstance(value, int | float) and not isinstance(value, bool):
        if fd.ge is not None and value < fd.ge:
            _range(family, fd.name, value, f">= {_num(fd.ge)}", "greater than or equal to", fd.ge)
        if fd.le is not None and value > fd.le:
            _range(family, fd.name, value, f"<= {_num(fd.le)}", "less than or equal to", fd.le)
    if fd.enum is not None and isinstance(value, str) and value not in fd.enum:
        options = ", ".join(f"'{e}'" for e in fd.enum)
        invalid(
            family,
            fd.name,
            f"Invalid value for '{fd.name}': expected one of {options}, but got '{value}'.",
            f"{fd.name}: Input should be {options}",
        )
    if isinstance(value, list):
        _check_length(family, fd.name, len(value), fd.min_items, fd.max_items, "item(s)")
        for index, item in enumerate(value if fd.item_enum is not None else ()):
            check_value(family, Field(f"{fd.name}[{index}]", ("string",), enum=fd.item_enum),
                        item)
    if isinstance(value, str):
        _check_length(family, fd.name, len(value), fd.min_len, fd.max_len, "character(s)")


def _check_length(family: Family, name: str, size: int, least: int | None,
                  most: int | None, unit: str) -> None:
    if least is not None and size < least:
        invalid(family, name, f"Invalid '{name}': expected at least {least} {unit}, but got "
                f"{size}.", f"{name}: should have at least {least} {unit}")
    if most is not None and size > most:
        invalid(family, name, f"Invalid '{name}': expected at most {most} {unit}, but got "
                f"{size}.", f"{name}: should have at most {most} {unit}")


def invalid(family: Family, param: str, openai_msg: str, anthropic_msg: str) -> NoReturn:
    """Raise a 400 worded for the family."""
    message = anthropic_msg if family == "anthropic" else openai_msg
    raise GatewayError("invalid_request", message, param=param)


def _range(family: Family, name: str, value: float, op: str, words: str, bound: float) -> NoReturn:
    invalid(
        family,
        name,
        f"Invalid '{name}': expected a value {op}, but got {_num(value)} instead.",
        f"{name}: Input should be {words} {_num(bound)}",
    )


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _article(t: str) -> str:
    return {"integer": "an integer", "array": "an array", "object": "an object"}.get(t, f"a {t}")
