"""Read a parsed TOML or JSON mapping into typed settings classes, checking every value.

The settings are plain dataclasses; each field's annotation says what it accepts:
``str``, ``bool``, ``int`` and ``float`` (bounded by ``Bounds``), ``Path | None``,
``timedelta`` (a duration: "90s", "15m" or seconds), ``time`` ("07:00"),
``Literal[...]``, ``list[...]`` and nested sections, with ``Check`` for a field's own
rule and ``Alias`` for a key Python cannot spell (``from``). pydantic did this until
its import cost every command ~0.15 s; only what a config file needs is here.

Scalars are as lax as an environment variable needs (every value there is a string:
"5" reads as 5, "yes" as true) and no laxer: a TOML boolean is not a number, 1 is
not a boolean, and a fractional or non-finite number is not an integer.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
from collections.abc import Callable, Mapping
from datetime import time, timedelta
from pathlib import Path
from typing import (
    TYPE_CHECKING,
    Annotated,
    Any,
    Literal,
    Self,
    get_args,
    get_origin,
    get_type_hints,
)

from publisher.errors import ConfigError

#: Where a value sits: section, [[list]] index, key (the shape the line finder reads).
Loc = tuple[str | int, ...]
#: Turn one raw value into the field's type, or raise SettingError at ``loc``.
Reader = Callable[[object, Loc], Any]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_CLOCK = re.compile(r"\s*(\d{1,2}):(\d{2})\s*")
#: The spellings of a boolean an environment variable may use (pydantic's set).
_TRUE = frozenset({"true", "yes", "on", "1", "t", "y"})
_FALSE = frozenset({"false", "no", "off", "0", "f", "n"})


class SettingError(ConfigError):
    """Reject one value, remembering where it sits so the caller can name file and line."""

    def __init__(self, loc: Loc, message: str) -> None:
        self.loc = loc
        self.message = message
        super().__init__(f"{dotted(loc)}: {message}")


def dotted(loc: Loc) -> str:
    """Return ``loc`` as section.key, list indexes left out."""
    return ".".join(str(part) for part in loc if not isinstance(part, int)) or "(top level)"


@dataclasses.dataclass(frozen=True)
class Bounds:
    """The smallest and largest number a setting accepts."""

    ge: float | None = None
    le: float | None = None


@dataclasses.dataclass(frozen=True)
class Check:
    """A field's own rule: return the value (perhaps normalised) or raise ValueError."""

    rule: Callable[[Any], Any]


@dataclasses.dataclass(frozen=True)
class Alias:
    """The key a setting has in the file when Python cannot spell it (``from``)."""

    key: str


def parse_duration(value: object) -> timedelta:
    """Turn "90s", "15m", "24h", "7d" or a number of seconds into a timedelta."""
    if isinstance(value, timedelta):
        return value
    seconds: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = value
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match[1]) * _UNITS[match[2] or "s"]
    if seconds is not None and math.isfinite(seconds) and seconds >= 0:
        try:
            return timedelta(seconds=seconds)
        except OverflowError:
            raise ValueError(f"too long a duration: {shown(value)}") from None
    raise ValueError(f"not a duration: {shown(value)} (use e.g. 90s, 15m, 24h, 7d)")


def parse_clock_time(value: object) -> time:
    """Turn "07:00" into a time of day."""
    if isinstance(value, time):
        return value
    if isinstance(value, str) and (match := _CLOCK.fullmatch(value)):
        hour, minute = int(match[1]), int(match[2])
        if hour < 24 and minute < 60:
            return time(hour, minute)
    raise ValueError(f"not a time of day: {shown(value)} (use HH:MM, e.g. 07:00)")


def shown(value: object) -> str:
    """Describe a value for an error message, the way the file would spell it, briefly."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list | tuple):
        return "a list"
    text = repr(value)
    # A value can be as long as the file or variable: an error line quotes its start.
    return text if len(text) <= 80 else text[:77] + "..."


@dataclasses.dataclass(frozen=True)
class SettingField:
    """One setting of a section: its attribute, its key in the file and how to read it."""

    name: str
    key: str
    read: Reader
    #: A list or a table, which an environment variable gives as JSON.
    structured: bool
    #: The section class a table or list of tables holds, else None.
    section: type[Section] | None
    #: A list (of tables, when ``section`` is set).
    is_list: bool
    field: dataclasses.Field[Any]

    @property
    def required(self) -> bool:
        """Tell whether the setting has no default."""
        return (
            self.field.default is dataclasses.MISSING
            and self.field.default_factory is dataclasses.MISSING
        )

    def default(self) -> Any:
        """Return a fresh default value."""
        if self.field.default_factory is not dataclasses.MISSING:
            return self.field.default_factory()
        return self.field.default


class Section:
    """Base of the settings dataclasses: build one from a mapping, checking every key."""

    __slots__ = ()

    if TYPE_CHECKING:
        # Each subclass is a dataclass, whose generated __init__ replaces this one.
        def __init__(self, **values: Any) -> None: ...

    @classmethod
    def from_mapping(cls, data: object, loc: Loc = ()) -> Self:
        """Validate ``data`` (a TOML table or JSON object) into this section.

        Raise SettingError naming the first bad key: an unknown one, a missing required
        one, or a value its field does not accept. The constructor, by contrast, trusts
        its arguments, as code that builds settings knows their types.
        """
        if not isinstance(data, Mapping):
            raise SettingError(loc, f"expected a table, got {shown(data)}")
        fields = _fields_by_key(cls)
        values: dict[str, Any] = {}
        for key, value in data.items():
            setting = fields.get(key)
            if setting is None:
                raise SettingError((*loc, str(key)), "unknown setting")
            values[setting.name] = setting.read(value, (*loc, key))
        for setting in fields.values():
            if setting.required and setting.name not in values:
                raise SettingError((*loc, setting.key), "required, but not set")
        return cls(**values)

    @classmethod
    def setting_fields(cls) -> tuple[SettingField, ...]:
        """Return the section's settings in declaration order."""
        return tuple(_fields_by_key(cls).values())


_SCHEMAS: dict[type[Section], dict[str, SettingField]] = {}


def _fields_by_key(cls: type[Section]) -> dict[str, SettingField]:
    """Read the class's annotations once into readers, keyed as the file spells them."""
    known = _SCHEMAS.get(cls)
    if known is not None:
        return known
    hints = get_type_hints(cls, include_extras=True)
    fields: dict[str, SettingField] = {}
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        if not field.init:
            continue  # set by the loader (config_path), not a setting
        hint = hints[field.name]
        key = next((m.key for m in _metadata(hint) if isinstance(m, Alias)), field.name)
        base = _unwrap(hint)
        section = _section_of(base)
        fields[key] = SettingField(
            name=field.name,
            key=key,
            read=_reader(hint),
            structured=get_origin(base) is list or section is not None,
            section=section,
            is_list=get_origin(base) is list,
            field=field,
        )
    _SCHEMAS[cls] = fields
    return fields


def _metadata(hint: Any) -> tuple[Any, ...]:
    return hint.__metadata__ if get_origin(hint) is Annotated else ()


def _unwrap(hint: Any) -> Any:
    return get_args(hint)[0] if get_origin(hint) is Annotated else hint


def _section_of(hint: Any) -> type[Section] | None:
    if get_origin(hint) is list:
        hint = get_args(hint)[0]
    return hint if isinstance(hint, type) and issubclass(hint, Section) else None


def _reader(hint: Any) -> Reader:
    """Build the function that reads one value of type ``hint``."""
    metadata = _metadata(hint)
    read = _base_reader(_unwrap(hint))
    for marker in metadata:
        if isinstance(marker, Bounds):
            read = _bounded(read, marker)
        elif isinstance(marker, Check):
            read = _checked(read, marker.rule)
    return read


def _base_reader(hint: Any) -> Reader:
    origin = get_origin(hint)
    if origin is types.UnionType:
        options = [arg for arg in get_args(hint) if arg is not type(None)]
        if len(options) != 1 or len(get_args(hint)) != 2:
            raise TypeError(f"unsupported setting type {hint!r}")
        return _optional(_base_reader(options[0]))
    if origin is Literal:
        return _choice(get_args(hint))
    if origin is list:
        return _list_of(_reader(get_args(hint)[0]))
    if isinstance(hint, type) and issubclass(hint, Section):
        return hint.from_mapping
    simple = _SIMPLE.get(hint)
    if simple is None:
        raise TypeError(f"unsupported setting type {hint!r}")
    return simple


def _read_str(value: object, loc: Loc) -> str:
    if not isinstance(value, str):
        raise SettingError(loc, f"expected a string, got {shown(value)}")
    return value


def _read_bool(value: object, loc: Loc) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise SettingError(loc, f"expected true or false, got {shown(value)}")


def _read_int(value: object, loc: Loc) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise SettingError(loc, f"expected an integer, got {shown(value)}")


def _read_float(value: object, loc: Loc) -> float:
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = None
    if number is None or not math.isfinite(number):
        raise SettingError(loc, f"expected a number, got {shown(value)}")
    return number


def _read_path(value: object, loc: Loc) -> Path:
    return Path(_read_str(value, loc))


def _rule(parse: Callable[[object], Any]) -> Reader:
    """Read with a parser that raises ValueError carrying the message."""

    def read(value: object, loc: Loc) -> Any:
        try:
            return parse(value)
        except ValueError as exc:
            raise SettingError(loc, str(exc)) from None

    return read


_SIMPLE: dict[Any, Reader] = {
    str: _read_str,
    bool: _read_bool,
    int: _read_int,
    float: _read_float,
    Path: _read_path,
    timedelta: _rule(parse_duration),
    time: _rule(parse_clock_time),
}


def _optional(read: Reader) -> Reader:
    def read_optional(value: object, loc: Loc) -> Any:
        # An empty string unsets it: an environment variable cannot hold null.
        return None if value is None or value == "" else read(value, loc)

    return read_optional


def _choice(options: tuple[Any, ...]) -> Reader:
    listed = ", ".join(str(option) for option in options)

    def read_choice(value: object, loc: Loc) -> Any:
        if isinstance(value, str) and value in options:
            return value
        raise SettingError(loc, f"must be one of {listed}, got {shown(value)}")

    return read_choice


def _list_of(read_item: Reader) -> Reader:
    def read_list(value: object, loc: Loc) -> list[Any]:
        if not isinstance(value, list):
            raise SettingError(loc, f"expected a list, got {shown(value)}")
        return [read_item(item, (*loc, index)) for index, item in enumerate(value)]

    return read_list


def _bounded(read: Reader, bounds: Bounds) -> Reader:
    def read_bounded(value: object, loc: Loc) -> Any:
        number = read(value, loc)
        if bounds.ge is not None and number < bounds.ge:
            raise SettingError(loc, f"must be >= {_number(bounds.ge)}, got {shown(number)}")
        if bounds.le is not None and number > bounds.le:
            raise SettingError(loc, f"must be <= {_number(bounds.le)}, got {shown(number)}")
        return number

    return read_bounded


def _number(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else str(bound)


def _checked(read: Reader, rule: Callable[[Any], Any]) -> Reader:
    def read_checked(value: object, loc: Loc) -> Any:
        try:
            return rule(read(value, loc))
        except ValueError as exc:
            raise SettingError(loc, str(exc)) from None

    return read_checked
