"""Can PostgreSQL store this? One answer for every input the service keeps.

PostgreSQL `text` and `jsonb` refuse the NUL character; a lone surrogate (`"\\ud800"`, which
JSON escapes and YAML double-quoted escapes can produce) cannot be encoded as UTF-8 at all; and
`jsonb` refuses NaN and ±Infinity. Each would fail at insert time, as a 500, after the request
was otherwise accepted. Callers either refuse such input up front (`text_problem`,
`json_problem`: documents and request bodies, each with its own error wording) or clean it
(`storable_text`, `storable_json`: upstream data such as agent replies and platform events,
which must be kept rather than refused).
"""

from __future__ import annotations

import enum
import math
from typing import Any


class Unstorable(enum.StrEnum):
    """Why a value cannot be stored."""

    NUL = "nul"
    SURROGATE = "surrogate"
    NON_FINITE = "non_finite"
    TOO_DEEP = "too_deep"


def text_problem(text: str) -> Unstorable | None:
    """NUL for a NUL character, SURROGATE for a lone surrogate, else None."""
    if "\x00" in text:
        return Unstorable.NUL
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return Unstorable.SURROGATE
    return None


def json_problem(value: Any, *, max_depth: int | None = None) -> Unstorable | None:
    """The first problem found in a parsed JSON/YAML value (keys and values, at any depth), or
    None. With `max_depth`, a container nested deeper than that (the value itself is level 1) is
    TOO_DEEP. Iterative, so a hostile nesting cannot overflow the check itself."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            problem = text_problem(item)
            if problem:
                return problem
        elif isinstance(item, float):
            if not math.isfinite(item):
                return Unstorable.NON_FINITE
        elif isinstance(item, dict | list | tuple):
            if max_depth is not None and depth > max_depth:
                return Unstorable.TOO_DEEP
            if isinstance(item, dict):
                stack.extend((key, depth) for key in item)
                stack.extend((child, depth + 1) for child in item.values())
            else:
                stack.extend((child, depth + 1) for child in item)
    return None


def storable_text(text: str) -> str:
    """`text` as the database can store it: NUL characters dropped, lone surrogates replaced
    by `?`. For upstream data that must be kept (an agent's reply, a platform event)."""
    return text.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")


def storable_json(value: Any) -> Any:
    """A copy of a parsed JSON value with every string (keys included) passed through
    `storable_text`; keys become strings and tuples lists, as JSON has them."""
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, dict):
        return {storable_text(str(key)): storable_json(child) for key, child in value.items()}
    if isinstance(value, list | tuple):
        return [storable_json(child) for child in value]
    return value
