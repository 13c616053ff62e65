"""The default JSON parser: DRF's, plus two kinds of body that used to be 500s are now a 400
`invalid_request`:

- nesting beyond Python's recursion limit (DRF only catches ValueError, not RecursionError);
- a number too large for a double (`1e400`), which Python reads as `inf` and PostgreSQL's
  `jsonb` then refuses. NaN/Infinity literals are already refused by DRF's strict mode.
"""

from __future__ import annotations

import codecs
import math
from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser as DRFJSONParser
from rest_framework.utils import json


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number out of range: {text[:40]}")
    return value


class JSONParser(DRFJSONParser):
    def parse(self, stream: Any, media_type: Any = None, parser_context: Any = None) -> Any:
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            decoded_stream = codecs.getreader(encoding)(stream)
            parse_constant = json.strict_constant if self.strict else None
            return json.load(decoded_stream, parse_constant=parse_constant, parse_float=_finite_float)
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
        except RecursionError:
            raise ParseError("The request body is nested too deeply.") from None
