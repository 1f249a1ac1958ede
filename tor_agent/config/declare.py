"""How an intent field is declared, once: its type (the dataclass annotation), default, range or choices,
parser and doc line. The reader, the docs tables and the JSON Schema are all derived from it.

    maximum_paths: int = setting(256, range=(1, 256), doc="ECMP width: at least the number of spines")
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal, Union

MISSING: Any = dataclasses.MISSING


class Invalid(ValueError):
    """A value a parser refuses; the message says what is wrong and what is allowed."""


@dataclass(frozen=True)
class Setting:
    """Everything about one field beyond its type and default (see `setting`)."""

    doc: str
    range: tuple[int, int] | None = None
    also: tuple[int, ...] = ()  # integers allowed outside `range`, e.g. 0 for "off"
    parse: Callable[[Any], Any] | None = None  # the raw YAML value (a list's item) -> the field's value
    kind: str | None = None  # the docs' type column, when the annotation does not say it well
    default_doc: str | None = None  # the docs' default column, when the default is not a plain value
    derived: bool = False  # when absent, the loader computes it from other fields (default_doc says how)
    min_items: int = 0  # lists
    unique: bool = False  # lists: no item twice
    yaml: bool = True  # False: set by the loader, not read from the file (e.g. the key read from key_file)
    json: dict[str, Any] | None = None  # the JSON Schema of a parsed value (or of its items)


def setting(
    default: Any = MISSING,
    *,
    doc: str,
    range: tuple[int, int] | None = None,
    also: tuple[int, ...] = (),
    parse: Callable[[Any], Any] | None = None,
    kind: str | None = None,
    default_doc: str | None = None,
    derived: bool = False,
    min_items: int = 0,
    unique: bool = False,
    yaml: bool = True,
    json: dict[str, Any] | None = None,
    repr: bool = True,
    compare: bool = True,
) -> Any:
    """A dataclass field carrying its `Setting`; without `default` the key is required."""
    meta = Setting(doc, range, also, parse, kind, default_doc, derived, min_items, unique, yaml, json)
    return dataclasses.field(default=default, repr=repr, compare=compare, metadata={"setting": meta})


@dataclass(frozen=True)
class Field:
    """One declared field of a section, with its type resolved."""

    name: str
    type: Any
    setting: Setting
    default: Any  # MISSING when required

    @property
    def required(self) -> bool:
        return self.default is MISSING


@cache
def fields_of(cls: type) -> tuple[Field, ...]:
    """The declared fields of dataclass `cls`, in declaration order."""
    hints = typing.get_type_hints(cls)
    found = []
    for f in dataclasses.fields(cls):
        meta = f.metadata.get("setting")
        if meta is None:
            raise TypeError(f"{cls.__name__}.{f.name} is not declared with setting()")
        found.append(Field(f.name, hints[f.name], meta, f.default))
    return tuple(found)


def yaml_fields(cls: type) -> Iterator[Field]:
    """The fields of `cls` an intent file writes."""
    return (f for f in fields_of(cls) if f.setting.yaml)


def default_of(cls: type, name: str) -> Any:
    """The declared default of `cls.name`: the one place code outside the loader takes it from."""
    (found,) = (f for f in fields_of(cls) if f.name == name)
    if found.required:
        raise KeyError(f"{cls.__name__}.{name} is required: it has no default")
    return found.default


# --- what an annotation means ---------------------------------------------------------------------


def optional(tp: Any) -> Any:
    """`X` for `X | None`; `tp` itself otherwise."""
    members = union_members(tp)
    rest = [m for m in members if m is not type(None)]
    if len(members) > 1 and len(rest) == 1:
        return rest[0]
    return tp


def union_members(tp: Any) -> tuple[Any, ...]:
    """The members of a union (`int | Literal["flow"] | None`), or `(tp,)`."""
    if typing.get_origin(tp) in (Union, types.UnionType):
        return typing.get_args(tp)
    return (tp,)


def literal_choices(tp: Any) -> tuple[Any, ...] | None:
    """The values of a `Literal[...]`, or None."""
    return typing.get_args(tp) if typing.get_origin(tp) is Literal else None


def list_item(tp: Any) -> Any | None:
    """`X` for `tuple[X, ...]`, or None."""
    if typing.get_origin(tp) is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return args[0]
    return None


def is_section(tp: Any) -> bool:
    """A nested mapping: a declared dataclass."""
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)
