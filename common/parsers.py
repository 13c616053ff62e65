"""The API's JSON parser: bodies that PostgreSQL or the JSON renderer cannot take are a 400.

Python's `json` accepts things that later blow up as a 500:
- nesting deep enough to hit the recursion limit (DRF only catches ValueError);
- a number too large for a double (`1e400`), read as `inf`, which PostgreSQL's `jsonb` refuses
  (NaN/Infinity literals are already refused by DRF's strict mode);
- `\\u0000` (PostgreSQL text and JSONB cannot store NUL);
- unpaired surrogates such as `\\ud800` (not encodable as UTF-8, so even the error answer that
  echoes them would fail).
"""

from __future__ import annotations

import codecs
import json
import math
from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser
from rest_framework.utils import json as drf_json

from common.errors import ApplicationError
from common.storable import json_problem

UNSTORABLE_MESSAGE = "Strings in the request body must not contain NUL (\\u0000) or unpaired surrogates."


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number out of range: {text[:40]}")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def loads_strict(data: bytes | str) -> Any:
    """`json.loads` for bodies nobody vouched for: raises ValueError (never RecursionError or a
    500 later) on invalid UTF-8, nesting deeper than the interpreter allows, NaN/Infinity
    literals and numbers beyond a double (`1e999999`, which `jsonb` would refuse as `inf`).
    Integers past Python's digit limit already raise ValueError."""
    try:
        return json.loads(data, parse_float=_finite_float, parse_constant=_no_constant)
    except RecursionError:
        raise ValueError("nested too deeply") from None


class StrictJSONParser(JSONParser):
    """DRF's JSONParser (strict: no NaN/Infinity) plus the checks above."""

    def parse(self, stream: Any, media_type: Any = None, parser_context: Any = None) -> Any:
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            decoded_stream = codecs.getreader(encoding)(stream)
            parse_constant = drf_json.strict_constant if self.strict else None
            data = drf_json.load(decoded_stream, parse_constant=parse_constant, parse_float=_finite_float)
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
        except RecursionError:
            raise ParseError("The request body is nested too deeply.") from None
        if json_problem(data) is not None:
            raise ApplicationError(UNSTORABLE_MESSAGE, code="invalid_request")
        return data
