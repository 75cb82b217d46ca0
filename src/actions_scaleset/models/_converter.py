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
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Final, TypeVar, get_args, get_origin

import attrs
import cattrs
from cattrs.cols import homogenous_tuple_structure_factory
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from .._json import json_problem, load_json
from .._secret import Secret
from ..errors import InvalidResponseError
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

__all__ = [
    "NIL_UUID",
    "ZERO_TIME",
    "camel_wire",
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
    if value == ZERO_TIME:  # the usual "not yet" of job events, worth a fast path
        return None
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


def _tuple_factory(cls: Any) -> Callable[[Any, Any], Any]:
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


def _key_normaliser(names: Mapping[str, str]) -> Callable[[Mapping[Any, Any]], Mapping[Any, Any]]:
    """Rename keys that match a wire name but for case (Go's rule); exact keys cost one set test."""
    wire = frozenset(names.values())
    by_lower = {name.lower(): name for name in wire}
    # Keys that are known but not fields (a job event's dispatch key): no renaming needed.
    wire = wire | _KNOWN_EXTRA_KEYS

    def normalise(value: Mapping[Any, Any]) -> Mapping[Any, Any]:
        if wire.issuperset(value):
            return value
        if not any(str(key).lower() in by_lower for key in value.keys() - wire):
            return value
        return {
            (key if key in wire else by_lower.get(str(key).lower(), key)): item for key, item in value.items()
        }

    return normalise


class _Slow(Exception):
    """The fast structure function cannot read this value: the cattrs one decides."""


def _all_str(items: list[Any]) -> bool:
    return all(item.__class__ is str for item in items)


def _fast_kind(field_type: Any) -> str | None:
    if field_type is int or field_type is str or field_type is bool:
        return field_type.__name__
    if field_type == _OPTIONAL_DATETIME:
        return "time"
    if field_type == tuple[str, ...]:
        return "strs"
    return None


def _fast_structure_fn(cls: type, names: Mapping[str, str], *, go_nulls: bool) -> Callable[[Any], Any] | None:
    """A structure function without a Python hook per plain field, for classes whose fields are all
    `int`, `str`, `bool`, `datetime | None` or `tuple[str, ...]`; None for any other class.

    It reads only exact JSON types (a `str` field takes a `str`, an `int` field an
    `int` and never a bool, a tuple a list of strings, a time a string) and raises for
    anything else, a missing required key included: the caller then runs the cattrs
    function, which accepts or refuses the value, with its error, exactly as before.
    The mapping's keys are already the wire names (`_key_normaliser`).
    """
    if not isinstance(cls, type):
        return None
    try:
        fields = attrs.fields(attrs.resolve_types(cls))
    except (NameError, TypeError):
        return None
    namespace: dict[str, Any] = {
        "_MISSING": _MISSING,
        "_Slow": _Slow,
        "_all_str": _all_str,
        "_parse_timestamp": parse_timestamp,
        "_ZERO_TIME": ZERO_TIME,
        "_cls": cls,
    }
    # Absent (and, with Go's rules, null): the field keeps its default.
    absent = "v is None" if go_nulls else "v is _MISSING"
    get = "o.get({!r})" if go_nulls else "o.get({!r}, _MISSING)"
    lines = ["def fast(o):"]
    arguments = []
    for index, field in enumerate(fields):
        kind = _fast_kind(field.type)
        if kind is None or not field.init:
            return None
        name = f"f{index}"
        arguments.append(f"{field.alias}={name}")
        lines.append(f"    v = {get.format(names[field.name])}")
        if field.default is attrs.NOTHING:
            lines.append(f"    if {absent}:")
            lines.append("        raise _Slow")
        elif isinstance(field.default, attrs.Factory):  # type: ignore[arg-type]
            if field.default.takes_self:
                return None
            namespace[f"_default{index}"] = field.default.factory
            lines.append(f"    if {absent}:")
            lines.append(f"        {name} = _default{index}()")
        else:
            namespace[f"_default{index}"] = field.default
            lines.append(f"    if {absent}:")
            lines.append(f"        {name} = _default{index}")
        branch = "if" if field.default is attrs.NOTHING else "elif"
        if kind == "strs":
            lines.append(f"    {branch} v.__class__ is not list or not _all_str(v):")
            value = "tuple(v)"
        else:
            lines.append(f"    {branch} v.__class__ is not {'str' if kind == 'time' else kind}:")
            value = "None if v == _ZERO_TIME else _parse_timestamp(v)" if kind == "time" else "v"
        lines.append("        raise _Slow")
        lines.append("    else:")
        lines.append(f"        {name} = {value}")
    lines.append(f"    return _cls({', '.join(arguments)})")
    code = compile("\n".join(lines), f"<actions_scaleset fast structure {cls.__qualname__}>", "exec")
    exec(code, namespace)  # noqa: S102 - generated from the class's own fields, as cattrs does
    fast: Callable[[Any], Any] = namespace["fast"]
    return fast


_MISSING: Final = object()


def _structure_fn(
    cls: type,
    *,
    hooks: Mapping[str, Callable[[Any, Any], Any]] | None = None,
    go_nulls: bool = False,
    prepare: Callable[[Mapping[Any, Any]], Mapping[Any, Any]] | None = None,
) -> Callable[[Any, type], Any]:
    """A structure hook for an attrs class: wire names, case-insensitive keys.

    `hooks` replace the structure hook of some fields; `go_nulls` reads a JSON null
    as an absent key; `prepare` rewrites the (renamed) mapping last.
    """
    names = _wire_names(cls)
    hooks = hooks or {}
    overrides = {name: override(rename=wire, struct_hook=hooks.get(name)) for name, wire in names.items()}
    generated: Callable[[Any, type], Any] = make_dict_structure_fn(cls, converter, **overrides)  # type: ignore[arg-type]
    normalise = _key_normaliser(names)
    what = getattr(cls, "__name__", str(cls))
    fast = _fast_structure_fn(cls, names, go_nulls=go_nulls) if not hooks and prepare is None else None

    def structure_hook(value: Any, target: type) -> Any:
        if value.__class__ is not dict and not isinstance(value, Mapping):  # the ABC check is the slow one
            raise TypeError(f"expected a JSON object for {what}, got {_json_kind(value)}")
        value = normalise(value)
        if fast is not None:
            try:
                return fast(value)
            except Exception:  # noqa: BLE001, S110 - the cattrs function below gives the answer and the error
                pass
        if go_nulls and None in value.values():
            value = {key: item for key, item in value.items() if item is not None}
        if prepare is not None:
            value = prepare(value)
        return generated(value, target)

    return structure_hook


def _structure_factory(cls: type) -> Callable[[Any, type], Any]:
    return _structure_fn(cls)


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
converter.register_structure_hook_factory(_is_homogeneous_tuple, _tuple_factory)
converter.register_unstructure_hook_factory(attrs.has, _unstructure_factory)


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


def _go_structure_factory(cls: type) -> Callable[[Any, type], Any]:
    if cls is RunnerScaleSetMessage:
        return _structure_fn(cls, hooks={"events": _passthrough}, go_nulls=True, prepare=_with_events)
    if cls is RunnerScaleSetSession:
        return _structure_fn(cls, hooks={"session_id": _structure_session_id}, go_nulls=True)
    return _structure_fn(cls, go_nulls=True)


def _go_unstructure_factory(cls: type) -> Callable[[Any], Any]:
    if cls is RunnerScaleSetMessage:
        return _go_unstructure_fn(cls, omit=frozenset({"events"}))
    if cls is RunnerScaleSetSession:
        return _go_unstructure_fn(cls, hooks={"session_id": lambda value: value or NIL_UUID})
    unstructure_fields = _go_unstructure_fn(cls, omit_empty=_OMIT_EMPTY.get(cls, frozenset()))
    if isinstance(cls, type) and issubclass(cls, JobMessageBase):
        message_type = cls.message_type

        def unstructure_event(value: Any) -> dict[str, Any]:
            return {"messageType": message_type, **unstructure_fields(value)}

        return unstructure_event
    return unstructure_fields


def _go_unstructure_fn(
    cls: type,
    *,
    omit_empty: frozenset[str] = frozenset(),
    omit: frozenset[str] = frozenset(),
    hooks: Mapping[str, Callable[[Any], Any]] | None = None,
) -> Callable[[Any], dict[str, Any]]:
    """Unstructure as Go's `encoding/json` marshals: None left out, None times as the zero time."""
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
    body = value.get("body", "")
    if not isinstance(body, str):
        raise TypeError(f"the message body must be a JSON string holding a list, not {_json_kind(body)}")
    events = parse_job_events(body) if value.get("messageType") == JOB_MESSAGES_TYPE else ()
    return {**value, "events": events}


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


converter.register_structure_hook_factory(_is_go_wire, _go_structure_factory)
converter.register_unstructure_hook_factory(_is_go_wire, _go_unstructure_factory)
converter.register_structure_hook(UnknownJobEvent, _structure_unknown_event)
converter.register_unstructure_hook(UnknownJobEvent, _unstructure_unknown_event)


def parse_job_events(body: str) -> tuple[JobEvent, ...]:
    """The job events in a message `body`: a JSON list, double-encoded in a string (docs/protocol.md,
    "Wire format").

    An empty body has none; a leading UTF-8 BOM is skipped. Elements dispatch on their
    `messageType`; an unknown type is kept as an `UnknownJobEvent`. Anything that is
    not a JSON list of objects raises `InvalidResponseError` (so does `"null"`).
    """
    if not body.removeprefix(_BOM).strip():
        return ()
    try:
        items = load_json(body)
    except ValueError as exc:
        raise InvalidResponseError(f"the message body is not JSON ({json_problem(exc)})") from None
    if not isinstance(items, list):
        raise InvalidResponseError(
            f"the message body must hold a JSON list of job messages, not {_json_kind(items)}"
        )
    return tuple(_job_event(index, item) for index, item in enumerate(items))


def _job_event(index: int, item: Any) -> JobEvent:
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
    hook = _JOB_EVENT_HOOKS.get(cls)
    if hook is None:
        hook = _JOB_EVENT_HOOKS[cls] = converter.get_structure_hook(cls)
    event: JobEvent = hook(item, cls)
    return event


# The converter's hook per job-event class, looked up once rather than dispatched per event.
_JOB_EVENT_HOOKS: Final[dict[type, Callable[[Any, Any], Any]]] = {}


def format_job_events(events: Iterable[JobEvent]) -> str:
    """A message `body` holding `events`: the inverse of `parse_job_events` (for fakes and tests)."""
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
    body: dict[str, Any] = converter.unstructure(scale_set)
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
    return converter.unstructure(value)


def _describe(exc: BaseException) -> str:
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
