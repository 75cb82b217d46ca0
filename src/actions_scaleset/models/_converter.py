"""The one cattrs converter, and every wire quirk it handles (docs/protocol.md, "Byte order marks",
"Wire format").

* camelCase on the wire, snake_case in Python, for classes marked `@camel_wire`
  (every Actions-service model but `ActionsServiceAdminConnection` is marked here);
  a field's `metadata={"wire": "RunnerSetting"}` names an exception.
* Keys match case-insensitively, as Go's `encoding/json` does; unknown keys are ignored.
* Times: RFC 3339 with up to 7 fraction digits (.NET), `Z` or an offset, and the
  zero time `0001-01-01T00:00:00Z` read as None.
* `Secret` values are plain strings on the wire.

Actions-service models (`_scaleset`) are read and written as Go's `encoding/json` does:

* read: a JSON `null` is the same as an absent key (the field keeps its default);
  a nil session UUID is None; the message `body` is a JSON *string* holding a list
  of job events, parsed once, here, into `RunnerScaleSetMessage.events`
  (`parse_job_events`; a UTF-8 BOM is tolerated; an unknown `messageType` becomes an
  `UnknownJobEvent`).
* write: None is never sent; a None time is the zero time and a None session id the
  nil UUID; the `omitempty` fields of the spec's tables are left out when zero or
  empty (so `False` is never sent in `RunnerSetting`); `RunnerSetting` and `createdOn`
  always go; each job event carries its `messageType`.

Request bodies are built by the pure functions at the end (`scale_set_request_body`,
`session_request_body`, `jit_config_request_body`).

The converter is built on first use (`cattrs_converter`). `structure` and
`parse_job_events` first try a function generated per class (`_fast`) that reads the
shapes GitHub sends with these same rules, and leave anything else to the converter,
which accepts or refuses it as it always did (issue 16).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Final, TypeVar, get_args, get_origin

import attrs

from .._json import check_json_depth, decode_json, json_problem, load_json
from .._secret import Secret
from ..errors import InvalidResponseError
from ._fast import Structurer, fast_structure_fn
from ._scaleset import (
    JOB_MESSAGES_TYPE,
    AcquirableJob,
    ActionsServiceAdminConnection,
    JitRunnerConfig,
    JobAssigned,
    JobAvailable,
    JobCompleted,
    JobEvent,
    JobMessageBase,
    JobStarted,
    Label,
    ListEnvelope,
    RunnerGroup,
    RunnerReference,
    RunnerScaleSet,
    RunnerScaleSetMessage,
    RunnerScaleSetSession,
    RunnerScaleSetStatistic,
    RunnerSetting,
    UnknownJobEvent,
)

if TYPE_CHECKING:
    import cattrs

    converter: cattrs.Converter
    """The cattrs converter, built on first use (`cattrs_converter`)."""

__all__ = [
    "NIL_UUID",
    "ZERO_TIME",
    "camel_wire",
    "cattrs_converter",
    "converter",
    "format_job_events",
    "format_timestamp",
    "jit_config_request_body",
    "parse_job_events",
    "parse_timestamp",
    "scale_set_request_body",
    "session_request_body",
    "structure",
    "to_camel",
    "unstructure",
]

T = TypeVar("T")

ZERO_TIME: Final = "0001-01-01T00:00:00Z"
NIL_UUID: Final = "00000000-0000-0000-0000-000000000000"
_CAMEL_MARK: Final = "__actions_scaleset_camel_wire__"


@functools.cache
def _timestamp_pattern() -> re.Pattern[str]:
    """Every time text `parse_timestamp` reads; compiled on first use, most times never need it."""
    return re.compile(
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
    if value == ZERO_TIME:  # the usual "not yet" of job events
        return None
    # The shape the service sends, `YYYY-MM-DDTHH:MM:SS[.fffffff]Z`: C's fromisoformat, 10x the
    # regex. Only the separators (positions 4, 7, 10, 13, 16 and 19) are checked here, and that a
    # fraction has a digit; fromisoformat refuses any other text the regex would not read alike
    # (non-ASCII digits included), and what it refuses is left to the regex.
    separators = value[4:20:3]
    if value[-1:] == "Z" and (
        (separators == "--T::." and len(value) > 21) or (separators == "--T::Z" and len(value) == 20)
    ):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            pass  # let the full parser say what is wrong
        else:
            return None if parsed.year <= 1 else parsed
    match = _timestamp_pattern().match(value.strip())
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
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # e.g. 9999-12-31T23:00:00-02:00
        raise ValueError(f"timestamp out of range: {value[:40]!r}") from None


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


def _is_homogeneous_tuple(cls: Any) -> bool:
    args = get_args(cls)
    return get_origin(cls) is tuple and len(args) == 2 and args[1] is Ellipsis


def _tuple_factory(cls: Any, converter: cattrs.Converter) -> Callable[[Any, Any], Any]:
    from cattrs.cols import homogenous_tuple_structure_factory

    # cattrs would turn a string into a tuple of characters; a JSON list (or a tuple) is required.
    structure_items = homogenous_tuple_structure_factory(cls, converter)

    def structure_tuple(value: Any, target: Any) -> Any:
        if not isinstance(value, list | tuple):
            raise TypeError(f"expected a JSON list, got {_json_kind(value)}")
        return structure_items(value, target)

    return structure_tuple


def _wire_names(cls: type) -> dict[str, str]:
    camel = bool(getattr(cls, _CAMEL_MARK, False))
    names = {}
    for field in attrs.fields(cls):
        wire = field.metadata.get("wire")
        names[field.name] = wire if wire else (to_camel(field.name) if camel else field.name)
    return names


_KNOWN_EXTRA_KEYS: Final = frozenset({"messageType"})


def _exact_keys(names: Mapping[str, str]) -> frozenset[str]:
    """The keys read as they are: the wire names, and keys known not to be fields (a job event's
    dispatch key)."""
    return frozenset(names.values()) | _KNOWN_EXTRA_KEYS


def _key_normaliser(names: Mapping[str, str]) -> Callable[[Mapping[Any, Any]], Mapping[Any, Any]]:
    """Rename keys that match a wire name but for case (Go's rule); exact keys cost one set test."""
    by_lower = {name.lower(): name for name in names.values()}
    wire = _exact_keys(names)

    def normalise(value: Mapping[Any, Any]) -> Mapping[Any, Any]:
        if wire.issuperset(value):
            return value
        if not any(str(key).lower() in by_lower for key in value.keys() - wire):
            return value
        return {
            (key if key in wire else by_lower.get(str(key).lower(), key)): item for key, item in value.items()
        }

    return normalise


def _structure_fn(
    cls: type,
    converter: cattrs.Converter,
    *,
    hooks: Mapping[str, Callable[[Any, Any], Any]] | None = None,
    go_nulls: bool = False,
    prepare: Callable[[Mapping[Any, Any]], Mapping[Any, Any]] | None = None,
) -> Callable[[Any, type], Any]:
    """A structure hook for an attrs class: wire names, case-insensitive keys.

    `hooks` replace the structure hook of some fields; `go_nulls` reads a JSON null
    as an absent key; `prepare` rewrites the (renamed) mapping last. The generated
    function (`_fast_structurer`) reads the value first when it can.
    """
    from cattrs.gen import make_dict_structure_fn, override

    names = _wire_names(cls)
    hooks = hooks or {}
    overrides = {name: override(rename=wire, struct_hook=hooks.get(name)) for name, wire in names.items()}
    generated: Callable[[Any, type], Any] = make_dict_structure_fn(cls, converter, **overrides)  # type: ignore[arg-type]
    normalise = _key_normaliser(names)
    what = getattr(cls, "__name__", str(cls))
    fast = _fast_structurer(cls) if not hooks and prepare is None else None

    def structure_hook(value: Any, target: type) -> Any:
        if value.__class__ is not dict and not isinstance(value, Mapping):  # the ABC check is the slow one
            raise TypeError(f"expected a JSON object for {what}, got {_json_kind(value)}")
        if fast is not None:
            structured = fast(value)
            if structured is not None:
                return structured
        value = normalise(value)
        if go_nulls and None in value.values():
            value = {key: item for key, item in value.items() if item is not None}
        if prepare is not None:
            value = prepare(value)
        return generated(value, target)

    return structure_hook


def _structure_factory(cls: type, converter: cattrs.Converter) -> Callable[[Any, type], Any]:
    return _structure_fn(cls, converter)


def _unstructure_factory(cls: type, converter: cattrs.Converter) -> Callable[[Any], Any]:
    from cattrs.gen import make_dict_unstructure_fn, override

    names = _wire_names(cls)
    return make_dict_unstructure_fn(
        cls,
        converter,
        **{name: override(rename=wire) for name, wire in names.items()},  # type: ignore[arg-type]
    )


# --------------------------------------------------------------------------- Actions-service models

# Every Actions-service model but the admin connection (`{url, token}`) is camelCase.
_CAMEL_WIRE: Final = (
    AcquirableJob,
    JitRunnerConfig,
    JobAssigned,
    JobAvailable,
    JobCompleted,
    JobStarted,
    Label,
    RunnerGroup,
    RunnerReference,
    RunnerScaleSet,
    RunnerScaleSetMessage,
    RunnerScaleSetSession,
    RunnerScaleSetStatistic,
    RunnerSetting,
)
for _cls in _CAMEL_WIRE:
    camel_wire(_cls)
del _cls

# Models read and written with Go's encoding/json rules (nulls, omitempty, zero times).
_GO_WIRE: Final = frozenset({*_CAMEL_WIRE, ActionsServiceAdminConnection})
# Go `omitempty` fields (docs/protocol.md, "Wire format"): left out when zero, empty or false. The rest is
# always sent.
_OMIT_EMPTY: Final[Mapping[type, frozenset[str]]] = {
    RunnerScaleSet: frozenset(
        {"id", "name", "runner_group_id", "runner_group_name", "labels", "runner_jit_config_url"}
    ),
    RunnerSetting: frozenset({"ephemeral", "is_elastic", "disable_update"}),
}
_JOB_EVENT_TYPES: Final[Mapping[str, type[JobMessageBase]]] = {
    cls.message_type: cls for cls in (JobAvailable, JobAssigned, JobStarted, JobCompleted)
}
_OPTIONAL_DATETIME: Final = datetime | None
_BOM: Final = "\ufeff"
_JSON_KINDS: Final = (
    (type(None), "null"),
    (bool, "a boolean"),
    (int | float, "a number"),
    (str, "a string"),
    (list, "a list"),
    (Mapping, "an object"),
)


def _is_go_wire(cls: Any) -> bool:
    # UnknownJobEvent has hooks of its own, registered below.
    return cls in _GO_WIRE or get_origin(cls) is ListEnvelope


def _go_structure_factory(cls: type, converter: cattrs.Converter) -> Callable[[Any, type], Any]:
    if cls is RunnerScaleSetMessage:
        hooks = {"events": _passthrough}
        return _structure_fn(cls, converter, hooks=hooks, go_nulls=True, prepare=_with_events)
    if cls is RunnerScaleSetSession:
        return _structure_fn(cls, converter, hooks={"session_id": _structure_session_id}, go_nulls=True)
    return _structure_fn(cls, converter, go_nulls=True)


def _go_unstructure_factory(cls: type, converter: cattrs.Converter) -> Callable[[Any], Any]:
    if cls is RunnerScaleSetMessage:
        return _go_unstructure_fn(cls, converter, omit=frozenset({"events"}))
    if cls is RunnerScaleSetSession:
        return _go_unstructure_fn(cls, converter, hooks={"session_id": lambda value: value or NIL_UUID})
    unstructure_fields = _go_unstructure_fn(cls, converter, omit_empty=_OMIT_EMPTY.get(cls, frozenset()))
    if isinstance(cls, type) and issubclass(cls, JobMessageBase):
        message_type = cls.message_type

        def unstructure_event(value: Any) -> dict[str, Any]:
            return {"messageType": message_type, **unstructure_fields(value)}

        return unstructure_event
    return unstructure_fields


def _go_unstructure_fn(
    cls: type,
    converter: cattrs.Converter,
    *,
    omit_empty: frozenset[str] = frozenset(),
    omit: frozenset[str] = frozenset(),
    hooks: Mapping[str, Callable[[Any], Any]] | None = None,
) -> Callable[[Any], dict[str, Any]]:
    """Unstructure as Go's `encoding/json` marshals: None left out, None times as the zero time."""
    from cattrs.gen import make_dict_unstructure_fn, override

    attrs.resolve_types(get_origin(cls) or cls)
    names = _wire_names(cls)
    hooks = hooks or {}
    overrides: dict[str, Any] = {}
    for field in attrs.fields(cls):
        if field.name in omit:
            overrides[field.name] = override(omit=True)
            continue
        hook = hooks.get(field.name)
        if hook is None and field.type == _OPTIONAL_DATETIME:
            hook = format_timestamp
        overrides[field.name] = override(rename=names[field.name], unstruct_hook=hook)
    generated: Callable[[Any], dict[str, Any]] = make_dict_unstructure_fn(cls, converter, **overrides)
    empty = frozenset(names[name] for name in omit_empty)

    def unstructure_hook(value: Any) -> dict[str, Any]:
        data = generated(value)
        for key in [key for key, item in data.items() if item is None or (key in empty and not item)]:
            del data[key]
        return data

    return unstructure_hook


def _passthrough(value: Any, _: Any) -> Any:
    return value


def _structure_session_id(value: Any, _: Any) -> str | None:
    # scaleset always sends a session id, the nil UUID when there is none (docs/protocol.md, "Wire format",
    # "A 409 from a stale session").
    text = _structure_str(value, str)
    return None if text in ("", NIL_UUID) else text


def _with_events(value: Mapping[str, Any]) -> Mapping[str, Any]:
    """Parse a message's `body` once, when the message is decoded (docs/protocol.md, "Wire format")."""
    return {**value, "events": _events_in(value)}


def _events_in(value: Mapping[str, Any]) -> tuple[JobEvent, ...]:
    """The job events of a message object (keys renamed); a null body reads as an empty one."""
    body = value.get("body")
    if body is None:
        body = ""
    if not isinstance(body, str):
        raise TypeError(f"the message body must be a JSON string holding a list, not {_json_kind(body)}")
    return parse_job_events(body) if value.get("messageType") == JOB_MESSAGES_TYPE else ()


def _message_type_of(item: Mapping[str, Any]) -> str:
    message_type = item.get("messageType")
    if message_type is None:
        message_type = next((v for k, v in item.items() if str(k).lower() == "messagetype"), None)
    if message_type is None:
        return ""
    if not isinstance(message_type, str):
        raise TypeError(f"messageType must be a string, not {_json_kind(message_type)}")
    return message_type


def _structure_unknown_event(value: Any, _: Any) -> UnknownJobEvent:
    if not isinstance(value, Mapping):
        raise TypeError(f"expected a JSON object for a job message, got {_json_kind(value)}")
    return UnknownJobEvent(message_type=_message_type_of(value), raw=dict(value))


def _unstructure_unknown_event(value: UnknownJobEvent) -> dict[str, Any]:
    raw = dict(value.raw)
    if not any(str(key).lower() == "messagetype" for key in raw):
        raw["messageType"] = value.message_type
    return raw


def _json_kind(value: Any) -> str:
    """How a decoded JSON value reads in an error message (never the value: it may be secret)."""
    for kind, name in _JSON_KINDS:
        if isinstance(value, kind):
            return name
    return type(value).__name__


@functools.cache
def cattrs_converter() -> cattrs.Converter:
    """The converter, built on first use: `import actions_scaleset` does not load cattrs, and
    the usual job messages never need it (`_fast_structurer`, issue 16)."""
    import cattrs

    converter = cattrs.Converter(forbid_extra_keys=False)
    converter.register_structure_hook(datetime, _structure_datetime)
    converter.register_unstructure_hook(datetime, format_timestamp)
    converter.register_structure_hook(Secret, _structure_secret)
    converter.register_unstructure_hook(Secret, Secret.get_secret_value)
    converter.register_structure_hook(int, _structure_int)
    converter.register_structure_hook(str, _structure_str)
    converter.register_structure_hook(bool, _structure_bool)
    converter.register_structure_hook_factory(attrs.has, _structure_factory)
    converter.register_structure_hook_factory(_is_homogeneous_tuple, _tuple_factory)
    converter.register_unstructure_hook_factory(attrs.has, _unstructure_factory)
    # Actions-service models; UnknownJobEvent keeps its wire object as it is.
    converter.register_structure_hook_factory(_is_go_wire, _go_structure_factory)
    converter.register_unstructure_hook_factory(_is_go_wire, _go_unstructure_factory)
    converter.register_structure_hook(UnknownJobEvent, _structure_unknown_event)
    converter.register_unstructure_hook(UnknownJobEvent, _unstructure_unknown_event)
    return converter


if not TYPE_CHECKING:

    def __getattr__(name: str) -> Any:
        if name == "converter":
            return cattrs_converter()
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _fast_structurer(cls: Any, *, exact_keys_only: bool = False) -> Structurer | None:
    """The structure function generated for `cls` (`_fast`), or None when the converter must read it.

    It reads what the converter's hook for `cls` reads, with the same rules: Go's nulls for
    the Actions-service models, a message's events from its body. With `exact_keys_only`,
    an object with any key that is not a wire name is not read (None), nor is one holding
    such an object. Written once per class.
    """
    key = (cls, exact_keys_only)
    try:
        return _FAST_STRUCTURERS[key]
    except KeyError:
        pass
    except TypeError:  # an unhashable type is no model class
        return None
    structurer = _FAST_STRUCTURERS[key] = _write_fast_structurer(cls, exact_keys_only=exact_keys_only)
    return structurer


def _write_fast_structurer(cls: Any, *, exact_keys_only: bool) -> Structurer | None:
    if cls is RunnerScaleSetSession or cls is UnknownJobEvent or not attrs.has(cls):
        return None
    names = _wire_names(cls)
    return fast_structure_fn(
        cls,
        names,
        go_nulls=_is_go_wire(cls),
        exact_keys=_exact_keys(names),
        normalise=None if exact_keys_only else _key_normaliser(names),
        nested=functools.partial(_fast_structurer, exact_keys_only=exact_keys_only),
        parse_time=parse_timestamp,
        zero_time=ZERO_TIME,
        derived={"events": _events_in} if cls is RunnerScaleSetMessage else None,
    )


_FAST_STRUCTURERS: Final[dict[tuple[Any, bool], Structurer | None]] = {}


@functools.cache
def _job_event_structurers() -> Mapping[str, Structurer]:
    """The generated function of each job-event type, by `messageType`, for events holding wire
    names only: such an event holds no more than its fields, at most a list of strings."""
    found = {
        message_type: _fast_structurer(cls, exact_keys_only=True)
        for message_type, cls in _JOB_EVENT_TYPES.items()
    }
    return {message_type: structurer for message_type, structurer in found.items() if structurer is not None}


def parse_job_events(body: str) -> tuple[JobEvent, ...]:
    """The job events in a message `body`: a JSON list, double-encoded in a string (docs/protocol.md,
    "Wire format").

    An empty body has none; a leading UTF-8 BOM is skipped. Elements dispatch on their
    `messageType`; an unknown type is kept as an `UnknownJobEvent`. Anything that is
    not a JSON list of objects raises `InvalidResponseError` (so does `"null"`).
    """
    text = body.removeprefix(_BOM)
    if not text.strip():
        return ()
    try:
        items = decode_json(text)
    except ValueError as exc:
        raise _body_not_json(exc) from None
    if not isinstance(items, list):
        _check_body_depth(text, items)
        raise InvalidResponseError(
            f"the message body must hold a JSON list of job messages, not {_json_kind(items)}"
        )
    structurers = _job_event_structurers()
    events: list[Any] = []
    unusual = []
    for index, item in enumerate(items):
        try:  # the usual event: an object of a known `messageType` holding wire names only
            event = structurers[item["messageType"]](item)
        except Exception:  # noqa: BLE001 - anything else is read below
            event = None
        if event is None:
            unusual.append(index)
        events.append(event)
    if unusual:
        # The usual events hold no more than a list of strings; the others are checked as `load_json`
        # checks a document before any is read, then read by the converter, which says what is wrong.
        _check_body_depth(text, items)
        for index in unusual:
            events[index] = _job_event(index, items[index])
    return tuple(events)


def _check_body_depth(text: str, items: Any) -> None:
    try:
        check_json_depth(text, items)
    except ValueError as exc:
        raise _body_not_json(exc) from None


def _body_not_json(exc: ValueError) -> InvalidResponseError:
    return InvalidResponseError(f"the message body is not JSON ({json_problem(exc)})")


def _job_event(index: int, item: Any) -> JobEvent:
    import cattrs

    try:
        return _structure_job_event(item)
    except (cattrs.BaseValidationError, ValueError, TypeError, KeyError) as exc:
        raise InvalidResponseError(
            f"job message {index} in the message body does not have the expected shape: {_describe(exc)}"
        ) from None


def _structure_job_event(item: Any) -> JobEvent:
    if item.__class__ is not dict and not isinstance(item, Mapping):
        raise TypeError(f"expected a JSON object for a job message, got {_json_kind(item)}")
    cls = _JOB_EVENT_TYPES.get(_message_type_of(item))
    if cls is None:
        return _structure_unknown_event(item, UnknownJobEvent)
    event: JobEvent = cattrs_converter().get_structure_hook(cls)(item, cls)
    return event


def format_job_events(events: Iterable[JobEvent]) -> str:
    """A message `body` holding `events`: the inverse of `parse_job_events` (for fakes and tests)."""
    converter = cattrs_converter()
    return json.dumps([converter.unstructure(event) for event in events], separators=(",", ":"))


# --------------------------------------------------------------------------- request bodies


def scale_set_request_body(
    *,
    name: str | None = None,
    runner_group_id: int | None = None,
    labels: Iterable[str | Label] | None = None,
    runner_setting: RunnerSetting | None = None,
) -> dict[str, Any]:
    """The body of a scale-set create (POST) or update (PATCH), as GitHub's Go clients send it.

    None and zero fields are left out (Go `omitempty`), so an update names only what
    changes; `RunnerSetting` (`{}` when None) and the zero `createdOn` always go
    (docs/protocol.md, "Wire format"). A label given as a name, or with an empty type, has type `System`.
    No label is added for you: on create, scaleset uses the scale-set name when
    there is none.
    """
    if isinstance(labels, str):
        raise TypeError("labels must be a list of label names or Labels, not one string")
    scale_set = RunnerScaleSet(
        id=0,
        name=name or "",
        runner_group_id=runner_group_id or 0,
        labels=tuple(_label(label) for label in labels or ()),
        runner_setting=RunnerSetting() if runner_setting is None else runner_setting,
    )
    body: dict[str, Any] = cattrs_converter().unstructure(scale_set)
    return body


def _label(label: str | Label) -> Label:
    if isinstance(label, str):
        return Label(label)
    return label if label.type else Label(label.name)


def session_request_body(*, owner_name: str) -> dict[str, Any]:
    """The body of a session create: scaleset always sends the nil `sessionId` (docs/protocol.md,
    "Scale-set endpoints")."""
    return {"sessionId": NIL_UUID, "ownerName": owner_name}


def jit_config_request_body(*, name: str, work_folder: str = "") -> dict[str, Any]:
    """The body of `generatejitconfig`; `workFolder` is always sent, even empty (docs/protocol.md,
    "Wire format")."""
    return {"name": name, "workFolder": work_folder}


def structure(data: Any, cls: type[T], what: str | None = None) -> T:
    """Build `cls` from decoded JSON; a wrong shape raises `InvalidResponseError` saying where."""
    fast = _fast_structurer(cls)
    if fast is not None:
        structured: T | None = fast(data)
        if structured is not None:
            return structured
    converter = cattrs_converter()
    import cattrs

    try:
        return converter.structure(data, cls)
    except (cattrs.BaseValidationError, ValueError, TypeError, KeyError) as exc:
        raise InvalidResponseError(
            f"{what or getattr(cls, '__name__', cls)} does not have the expected shape: {_describe(exc)}"
        ) from None
    except RecursionError:
        # `load_json` bounds what the package decodes; this is for a value built elsewhere.
        raise InvalidResponseError(
            f"{what or getattr(cls, '__name__', cls)} is nested too deeply to be read"
        ) from None


def unstructure(value: Any) -> Any:
    return cattrs_converter().unstructure(value)


def _describe(exc: BaseException) -> str:
    import cattrs

    if isinstance(exc, cattrs.BaseValidationError):
        notes = cattrs.transform_error(exc)
        return "; ".join(notes[:5]) if notes else str(exc)
    if isinstance(exc, KeyError):
        return f"missing field {exc.args[0]!r}"
    return str(exc)


def salvage_message(payload: Any) -> tuple[RunnerScaleSetMessage | None, tuple[str, ...]]:
    """What can still be read of a message that failed to decode, and what could not.

    A message is redelivered until it is acknowledged, so one that can never be
    decoded would stop the queue for good. With a readable `messageId` it is kept:
    the statistics if they decode, and every job event that decodes on its own.
    Returns (None, problems) when not even the id can be read.
    """
    if not isinstance(payload, Mapping):
        return None, (f"the message is {_json_kind(payload)}, not an object",)
    fields = {str(key).lower(): value for key, value in payload.items()}
    message_id = fields.get("messageid")
    if isinstance(message_id, bool) or not isinstance(message_id, int):
        return None, ("the message has no integer messageId",)
    problems: list[str] = []
    message_type = fields.get("messagetype")
    if not isinstance(message_type, str):
        problems.append("messageType is not a string")
        message_type = ""
    statistics = None
    try:
        if fields.get("statistics") is not None:
            statistics = structure(fields["statistics"], RunnerScaleSetStatistic, "statistics")
    except InvalidResponseError as exc:
        problems.append(exc.reason)
    body = fields.get("body")
    events: list[JobEvent] = []
    if not isinstance(body, str):
        problems.append("the body is not a string")
        body = ""
    elif message_type == JOB_MESSAGES_TYPE and body.strip():
        try:
            items = load_json(body)
        except ValueError:
            items = None
        if not isinstance(items, list):
            problems.append("the body is not a JSON list")
            items = []
        for index, item in enumerate(items):
            try:
                events.append(_job_event(index, item))
            except InvalidResponseError as exc:
                problems.append(exc.reason)
    message = RunnerScaleSetMessage(
        message_id=message_id,
        message_type=message_type,
        body=body,
        statistics=statistics,
        events=tuple(events),
    )
    return message, tuple(problems)
