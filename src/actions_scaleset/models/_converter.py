"""The one cattrs converter, and every wire quirk it handles (spec: scaleset-api.md §4.5, §6).

* camelCase on the wire, snake_case in Python, for classes marked `@camel_wire`;
  a field's `metadata={"wire": "RunnerSetting"}` names an exception.
* Keys match case-insensitively, as Go's `encoding/json` does; unknown keys are ignored.
* Times: RFC 3339 with up to 7 fraction digits (.NET), `Z` or an offset, and the
  zero time `0001-01-01T00:00:00Z` read as None.
* `Secret` values are plain strings on the wire.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Final, TypeVar

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from .._secret import Secret
from ..errors import InvalidResponseError

__all__ = [
    "ZERO_TIME",
    "camel_wire",
    "converter",
    "format_timestamp",
    "parse_timestamp",
    "structure",
    "to_camel",
    "unstructure",
]

T = TypeVar("T")

ZERO_TIME: Final = "0001-01-01T00:00:00Z"
_CAMEL_MARK: Final = "__actions_scaleset_camel_wire__"
_TIMESTAMP: Final = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d+))?\s*(Z|z|[+-]\d{2}:?\d{2})?$"
)


def camel_wire(cls: type[T]) -> type[T]:
    """Mark an attrs class whose wire names are the camelCase of its fields."""
    setattr(cls, _CAMEL_MARK, True)
    return cls


def to_camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def parse_timestamp(value: str) -> datetime | None:
    """An aware UTC datetime from RFC 3339 / .NET text; None for the zero time.

    Accepts 7-digit fractions (truncated to microseconds), `Z`, offsets, and no
    zone at all (read as UTC). Raises ValueError for anything else.
    """
    match = _TIMESTAMP.match(value.strip())
    if match is None:
        raise ValueError(f"not a timestamp: {value[:40]!r}")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    if int(year) <= 1:
        return None
    micros = int((fraction or "0")[:6].ljust(6, "0"))
    tz: timezone = UTC
    if zone and zone not in ("Z", "z"):
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        tz = timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
    parsed = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), micros, tzinfo=tz)
    return parsed.astimezone(UTC)


def format_timestamp(value: datetime | None) -> str:
    """RFC 3339 in UTC with `Z`; None becomes the zero time GitHub's clients send."""
    if value is None:
        return ZERO_TIME
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}".rstrip("0")
    return text + "Z"


def _structure_datetime(value: Any, _: type) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        raise TypeError(f"a timestamp must be a string, not {type(value).__name__}")
    return parse_timestamp(value)


def _structure_secret(value: Any, _: type) -> Secret:
    if isinstance(value, Secret):
        return value
    if not isinstance(value, str):
        raise TypeError(f"a secret must be a string, not {type(value).__name__}")
    return Secret(value)


def _structure_int(value: Any, _: type) -> int:
    # Go's encoding/json refuses floats and strings for int fields; so do we,
    # but a bool is never an int on the wire.
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {type(value).__name__}")
    return value


def _structure_str(value: Any, _: type) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _structure_bool(value: Any, _: type) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false, got {type(value).__name__}")
    return value


def _wire_names(cls: type) -> dict[str, str]:
    camel = bool(getattr(cls, _CAMEL_MARK, False))
    names = {}
    for field in attrs.fields(cls):
        wire = field.metadata.get("wire")
        names[field.name] = wire if wire else (to_camel(field.name) if camel else field.name)
    return names


def _structure_factory(cls: type) -> Callable[[Any, type], Any]:
    names = _wire_names(cls)
    generated: Callable[[Any, type], Any] = make_dict_structure_fn(
        cls,
        converter,
        **{name: override(rename=wire) for name, wire in names.items()},  # type: ignore[arg-type]
    )
    wire_names = frozenset(names.values())
    by_lower = {wire.lower(): wire for wire in wire_names}

    def structure_hook(value: Any, target: type) -> Any:
        if not isinstance(value, Mapping):
            raise TypeError(f"expected a JSON object for {cls.__name__}, got {type(value).__name__}")
        if not wire_names.issuperset(value):
            # Go's encoding/json matches field names case-insensitively (spec §4.5)
            value = {
                (key if key in wire_names else by_lower.get(str(key).lower(), key)): item
                for key, item in value.items()
            }
        return generated(value, target)

    return structure_hook


def _unstructure_factory(cls: type) -> Callable[[Any], Any]:
    names = _wire_names(cls)
    return make_dict_unstructure_fn(
        cls,
        converter,
        **{name: override(rename=wire) for name, wire in names.items()},  # type: ignore[arg-type]
    )


converter: Final = cattrs.Converter(forbid_extra_keys=False)
converter.register_structure_hook(datetime, _structure_datetime)
converter.register_unstructure_hook(datetime, format_timestamp)
converter.register_structure_hook(Secret, _structure_secret)
converter.register_unstructure_hook(Secret, Secret.get_secret_value)
converter.register_structure_hook(int, _structure_int)
converter.register_structure_hook(str, _structure_str)
converter.register_structure_hook(bool, _structure_bool)
converter.register_structure_hook_factory(attrs.has, _structure_factory)
converter.register_unstructure_hook_factory(attrs.has, _unstructure_factory)


def structure(data: Any, cls: type[T], what: str | None = None) -> T:
    """Build `cls` from decoded JSON; a wrong shape raises `InvalidResponseError` saying where."""
    try:
        return converter.structure(data, cls)
    except (cattrs.BaseValidationError, ValueError, TypeError, KeyError) as exc:
        raise InvalidResponseError(
            f"{what or cls.__name__} does not have the expected shape: {_describe(exc)}"
        ) from None


def unstructure(value: Any) -> Any:
    return converter.unstructure(value)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, cattrs.BaseValidationError):
        notes = cattrs.transform_error(exc)
        return "; ".join(notes[:5]) if notes else str(exc)
    if isinstance(exc, KeyError):
        return f"missing field {exc.args[0]!r}"
    return str(exc)
