"""The API's JSON parser: bodies that PostgreSQL or the JSON renderer cannot take are a 400.

Python's `json` accepts three things that later blow up as a 500: nesting deep enough to hit the
recursion limit, `\\u0000` (PostgreSQL text and JSONB cannot store NUL) and unpaired surrogates
such as `\\ud800` (not encodable as UTF-8, so even the error answer that echoes them fails).
"""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from common.errors import ApplicationError

UNSTORABLE_MESSAGE = "Strings in the request body must not contain NUL (\\u0000) or unpaired surrogates."


def _is_storable(text: str) -> bool:
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_storable(data: Any) -> None:
    """Walks the parsed body without recursion; raises `invalid_request` on a bad string."""
    pending = [data]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if not _is_storable(item):
                raise ApplicationError(UNSTORABLE_MESSAGE, code="invalid_request")
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)


class StrictJSONParser(JSONParser):
    """DRF's JSONParser (strict: no NaN/Infinity) plus the checks above."""

    def parse(self, stream: Any, media_type: Any = None, parser_context: Any = None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("The request body is nested too deeply.") from None
        check_storable(data)
        return data
