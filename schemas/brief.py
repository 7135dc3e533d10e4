"""A short, bounded description of any value, for reasons and log lines.

``repr()`` is recursive and unbounded: a list nested 1,000 deep raises RecursionError,
a 10 MB string makes a 10 MB reason, and an int of 5,000 digits raises ValueError. A
message's content must never be able to do that to the code that rejects it, so this
walks JSON-like values with an explicit stack, stops at a depth and at a length, and
gives the same text as ``repr()`` wherever ``repr()`` would have fitted.
"""

from __future__ import annotations

from typing import Any

LIMIT = 80
MAX_DEPTH = 8
_BIG_INT_BITS = 256


class _Text(str):
    """A piece of output already written (brackets, separators), as opposed to a value."""


def _scalar(value: Any, limit: int) -> str:
    """The repr of a value that is not walked into, cut to about ``limit``."""
    if isinstance(value, str | bytes | bytearray):
        return repr(value[: limit + 1])
    if type(value) is int and value.bit_length() > _BIG_INT_BITS:
        return f"<int of {value.bit_length()} bits>"
    try:
        text = repr(value)
    except Exception:  # any repr may fail; the description must not
        return f"<{type(value).__name__}>"
    return text[: limit + 1]


def _open(value: list[Any] | dict[Any, Any], depth: int, stack: list[Any], limit: int) -> str:
    """Push a container's items (at most ``limit`` of them) and return its opening bracket."""
    is_dict = isinstance(value, dict)
    close = "}" if is_dict else "]"
    if depth >= MAX_DEPTH:
        return ("{" if is_dict else "[") + "..." + close
    stack.append(_Text(close))
    items: list[Any] = list(value.items()) if isinstance(value, dict) else value
    if len(items) > limit:
        stack.append(_Text(", ..."))
    # Reversed so that the stack pops them in order.
    for i in range(min(len(items), limit) - 1, -1, -1):
        if is_dict:
            key, item = items[i]
            stack.append((item, depth + 1))
            stack.append(_Text(_scalar(key, limit) + ": "))
        else:
            stack.append((items[i], depth + 1))
        if i:
            stack.append(_Text(", "))
    return "{" if is_dict else "["


def brief(value: Any, limit: int = LIMIT) -> str:
    """``repr(value)`` cut to ``limit`` characters ("..." at the end when cut), in
    bounded time and stack whatever the value is."""
    out: list[str] = []
    size = 0
    stack: list[Any] = [(value, 0)]
    while stack and size <= limit:
        item = stack.pop()
        if type(item) is _Text:
            piece = str(item)
        else:
            obj, depth = item
            if type(obj) is list or type(obj) is dict:
                piece = _open(obj, depth, stack, limit)
            else:
                piece = _scalar(obj, limit)
        out.append(piece)
        size += len(piece)
    text = "".join(out)
    if stack or len(text) > limit:
        return text[: limit - 3] + "..."
    return text


def brief_exception(exc: BaseException, limit: int = 200) -> str:
    """``TypeName: message`` of an exception, bounded (its args may hold the input)."""
    name = type(exc).__name__
    args = exc.args
    if len(args) == 1 and isinstance(args[0], str):
        text = args[0]
    elif not args:
        text = ""
    else:
        text = brief(args[0] if len(args) == 1 else list(args), limit)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"{name}: {text}" if text else name


def capped(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, "..." at the end when cut."""
    return text if len(text) <= limit else text[: limit - 3] + "..."
