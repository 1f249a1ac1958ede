"""Values quoted in problem messages: bounded and on one line.

YAML aliases can make a 600-byte file hold a value whose text is gigabytes long, so a value is never
turned into text whole: `shown` walks it only until it has enough characters.
"""

from __future__ import annotations

from collections.abc import Iterator

LIMIT = 60  # characters of a value quoted in a message
_MAX_INT_BITS = 256


def shown(value: object, limit: int = LIMIT) -> str:
    """`repr(value)`, cut to `limit` characters (then ending in "…")."""
    text, size = [], 0
    for piece in _pieces(value, limit):
        text.append(piece)
        size += len(piece)
        if size > limit:
            break
    out = "".join(text)
    return out if len(out) <= limit else out[:limit] + "…"


def one_line(text: str, limit: int = 4 * LIMIT) -> str:
    """`text` with control characters escaped, cut to `limit` characters."""
    text = text[: limit + 1]
    flat = text if text.isprintable() else "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return flat if len(flat) <= limit else flat[:limit] + "…"


def type_name(value: object) -> str:
    """How an operator would call the type of a YAML value."""
    names = {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "an integer"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def got(value: object) -> str:
    """What a value is, for "must be ..., got ...": its type and the value, bounded."""
    return "null" if value is None else f"{type_name(value)} {shown(value)}"


def _pieces(value: object, limit: int) -> Iterator[str]:
    if isinstance(value, str | bytes):
        yield repr(value[: limit + 1])
    elif isinstance(value, bool) or value is None or isinstance(value, float):
        yield repr(value)
    elif isinstance(value, int):
        yield repr(value) if value.bit_length() <= _MAX_INT_BITS else f"a {value.bit_length()}-bit integer"
    elif isinstance(value, dict):
        yield "{"
        for i, (key, item) in enumerate(value.items()):
            yield ", " if i else ""
            yield from _pieces(key, limit)
            yield ": "
            yield from _pieces(item, limit)
        yield "}"
    elif isinstance(value, list | tuple | set | frozenset):
        brackets = "[]" if isinstance(value, list | tuple) else "{}"
        yield brackets[0]
        for i, item in enumerate(value):
            yield ", " if i else ""
            yield from _pieces(item, limit)
        yield brackets[1]
    else:
        yield type(value).__name__
