"""Structure functions written per model class for the decoding hot path (issue 16).

`fast_structure_fn` writes, for a slotted attrs class whose fields are all `int`, `str`,
`bool`, one of those or None, `datetime | None`, `tuple[str, ...]` or another such class
(or None), a function that reads a decoded JSON object and builds the instance with no
hook per field and without attrs' `__init__`: each slot is set directly, as that
`__init__` would set it, so equality, hashing and immutability are unchanged.

It reads exact JSON types only (a `str` field takes a `str`, an `int` field an `int` and
never a bool, a tuple a list of strings, a time a string) and returns None for anything
else: a wrong type, a missing required field, a time it cannot read, an object that is
not a plain `dict`. The caller then runs the full cattrs converter, which accepts or
refuses the value, with its error, exactly as it would have without this module. The
wire rules applied (wire names, key case, null == absent) are the converter's, passed in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from types import MemberDescriptorType
from typing import Any, Final, TypeAlias, get_args

import attrs

__all__ = ["Structurer", "fast_structure_fn"]

Structurer: TypeAlias = Callable[[Any], Any]
"""Decoded JSON in, an instance (or None: "ask the converter") out."""

_MISSING: Final = object()
_SCALARS: Final = (int, str, bool)


def _kind(field_type: Any, nested: Callable[[Any], Structurer | None]) -> tuple[str, Any] | None:
    """How a field of this type is read, and the type or function that reads it; None if it is not."""
    optional = type(None) in get_args(field_type)
    base = [arg for arg in get_args(field_type) if arg is not type(None)] if optional else [field_type]
    if len(base) != 1:
        return None
    (base_type,) = base
    if base_type is datetime:
        return ("time", None) if optional else None
    if base_type in _SCALARS:
        return ("optional " if optional else "") + "scalar", base_type
    if field_type == tuple[str, ...]:
        return "strs", None
    if attrs.has(base_type):
        structurer = nested(base_type)
        if structurer is not None:
            return ("optional " if optional else "") + "model", structurer
    return None


def _built_by_init_alone(cls: type, fields: tuple[attrs.Attribute[Any], ...]) -> bool:
    """Whether setting each field's slot builds exactly what attrs' `__init__` builds."""
    slots: set[str] = set()
    for klass in cls.__mro__[:-1]:
        if "__slots__" not in klass.__dict__:
            return False  # an instance `__dict__`: not a slotted class
        slots.update(klass.__dict__["__slots__"])
    slots.discard("__weakref__")
    plain = all(
        field.init
        and field.validator is None
        and field.converter is None
        and isinstance(getattr(cls, field.name, None), MemberDescriptorType)
        for field in fields
    )
    hooks = ("__attrs_pre_init__", "__attrs_post_init__", "__attrs_init__")
    # A hidden slot (attrs' cached hash) would stay unset.
    return plain and slots == {field.name for field in fields} and not any(hasattr(cls, h) for h in hooks)


def fast_structure_fn(
    cls: Any,
    names: Mapping[str, str],
    *,
    go_nulls: bool,
    exact_keys: frozenset[str],
    nested: Callable[[Any], Structurer | None],
    normalise: Callable[[Mapping[Any, Any]], Mapping[Any, Any]] | None,
    parse_time: Callable[[str], datetime | None],
    zero_time: str,
    derived: Mapping[str, Callable[[Mapping[str, Any]], Any]] | None = None,
) -> Structurer | None:
    """A structure function for `cls`, or None when its fields are not all of the kinds above.

    `names` maps each field to its wire name; `go_nulls` reads a JSON null as an absent
    key; `nested(cls)` gives the function of a field's class (or None); an object with a
    key outside `exact_keys` goes through `normalise`, which renames keys that match a
    wire name but for case, or is not read when `normalise` is None (then a value read
    holds nothing but what its fields hold); `parse_time` reads a time (None for
    `zero_time`); `derived` computes a field from the whole (renamed) object.
    """
    if not isinstance(cls, type) or not attrs.has(cls):
        return None
    try:
        fields = attrs.fields(attrs.resolve_types(cls))
    except (NameError, TypeError):
        return None
    if not _built_by_init_alone(cls, fields):
        return None
    derived = derived or {}
    namespace: dict[str, Any] = {
        "_MISSING": _MISSING,
        "_cls": cls,
        "_new": object.__new__,
        "_normalise": normalise,
        "_parse_time": parse_time,
        "_fromisoformat": datetime.fromisoformat,
        "_ZERO_TIME": zero_time,
        "_exact_keys": exact_keys,
    }
    # Absent (and, with Go's rules, null): the field keeps its default.
    absent = "v is None" if go_nulls else "v is _MISSING"
    get = "o.get({!r})" if go_nulls else "o.get({!r}, _MISSING)"
    lines = [
        "def fast(o):",
        "    if o.__class__ is not dict:",
        "        return None",
        "    if not _exact_keys.issuperset(o):",
        "        o = _normalise(o)" if normalise is not None else "        return None",
        "    try:",
        "        self = _new(_cls)",
    ]
    for index, field in enumerate(fields):
        setter = f"_set{index}"
        namespace[setter] = getattr(cls, field.name).__set__
        if field.name in derived:
            namespace[f"_derive{index}"] = derived[field.name]
            lines.append(f"        {setter}(self, _derive{index}(o))")
            continue
        kind = _kind(field.type, nested)
        if kind is None:
            return None
        read = _read_field(kind, index, setter, namespace)
        if field.default is attrs.NOTHING:
            default = ["return None"]
        elif isinstance(field.default, attrs.Factory):  # type: ignore[arg-type]
            if field.default.takes_self:
                return None
            namespace[f"_default{index}"] = field.default.factory
            default = [f"{setter}(self, _default{index}())"]
        else:
            namespace[f"_default{index}"] = field.default
            default = [f"{setter}(self, _default{index})"]
        lines.append(f"        v = {get.format(names[field.name])}")
        lines.extend(f"        {line}" for line in read)
        if kind[0] in ("time", "optional scalar", "optional model") and not go_nulls:
            lines.append("        elif v is None:")  # an explicit null, not an absent key
            lines.append(f"            {setter}(self, None)")
        lines.append(f"        elif {absent}:")
        lines.extend(f"            {line}" for line in default)
        lines.append("        else:")
        lines.append("            return None")
    lines.append("        return self")
    lines.append("    except Exception:  # e.g. a time fromisoformat refuses: the converter decides")
    lines.append("        return None")
    code = compile("\n".join(lines), f"<actions_scaleset fast structure {cls.__qualname__}>", "exec")
    exec(code, namespace)  # noqa: S102 - written from the class's own fields, as attrs and cattrs do
    fast: Structurer = namespace["fast"]
    return fast


def _read_field(kind: tuple[str, Any], index: int, setter: str, namespace: dict[str, Any]) -> list[str]:
    """The `if` branch that reads `v` when it has the field's JSON type (the `elif`s follow)."""
    name, reader = kind
    if name.endswith("scalar"):
        namespace[f"_type{index}"] = reader
        return [f"if v.__class__ is _type{index}:", f"    {setter}(self, v)"]
    if name == "time":
        return [
            "if v.__class__ is str:",
            # the service's own `YYYY-MM-DDTHH:MM:SS.fffffffZ`, read as `parse_time` reads it, minus a call
            "    if v[-1:] == 'Z' and len(v) > 21 and v[4:20:3] == '--T::.':",
            "        v = _fromisoformat(v)",
            f"        {setter}(self, None if v.year <= 1 else v)",
            "    elif v == _ZERO_TIME:",  # the usual "not yet"
            f"        {setter}(self, None)",
            "    else:",
            f"        {setter}(self, _parse_time(v))",
        ]
    if name == "strs":
        return [
            "if v.__class__ is list:",
            "    for item in v:",
            "        if item.__class__ is not str:",
            "            return None",
            f"    {setter}(self, tuple(v))",
        ]
    namespace[f"_nested{index}"] = reader
    return [
        "if v.__class__ is dict:",
        f"    v = _nested{index}(v)",
        "    if v is None:",
        "        return None",
        f"    {setter}(self, v)",
    ]
