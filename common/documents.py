"""Document shapes as JSON Schemas, reported in the API's 400 shape.

The documents the service reads (org.yaml, bundles, template.yaml, plugin.yaml) declare their
shapes — types, required and allowed keys, enums, ranges, lengths — as JSON Schemas kept next
to the code that owns them (`templates_app/schemas.py`, `plugins_app/schemas.py`). This module
checks a document against one and reports every problem at a readable location such as
`workspaces[0].children[2].tier`, with the message the schema gives (`x-message`: one text for
any failure of that subschema, or one per keyword) or a plain default. Messages never echo the
value, except a `{value}` placeholder a schema asks for (a refused key's name).

Two deliberate differences from stock JSON Schema: "integer" means an integer literal (`2.0`
and `true` are not integers), and an unknown top-level key is reported as `<root>.<key>` so it
cannot be mistaken for an error of the field of that name.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from jsonschema import Draft202012Validator, ValidationError
from jsonschema.validators import extend

from common.errors import ApplicationError

MAX_REPORTED_ERRORS = 50


def _is_integer(checker: Any, instance: Any) -> bool:
    return isinstance(instance, int) and not isinstance(instance, bool)


_Validator = extend(
    Draft202012Validator,
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_integer),
)

_TYPE_NAMES = {
    "string": "a string",
    "object": "an object",
    "array": "a list",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
}


class ErrorCollector:
    """Field errors across a whole document, keyed by a readable path (`workspaces[0].tier`)."""

    def __init__(self) -> None:
        self.errors: dict[str, list[str]] = {}

    def add(self, path: str, message: str) -> None:
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.setdefault(path, []).append(message)

    def raise_if_any(self, message: str, *, error: type[ApplicationError] = ApplicationError) -> None:
        """`error` (a 400) naming the first problem in its message and all of them in `details`."""
        if self.errors:
            first_path, first = next(iter(self.errors.items()))
            raise error(f"{message} {first_path}: {first[0]}", details=self.errors)


def as_list(value: Any) -> list[Any]:
    """`value` if it is a list, else [] (absent, null, or refused by the schema: that error is
    already recorded, and the caller only keeps going to report the rest)."""
    return value if isinstance(value, list) else []


def fullmatch(pattern: str) -> str:
    """`^…$` as a JSON Schema pattern that also refuses a trailing newline (Python's `$`
    accepts one; `re.fullmatch`, which the models' own checks use, does not)."""
    return f"^(?:{pattern.removeprefix('^').removesuffix('$')})$(?!\\n)"


def _join(location: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{location}[{key}]"
    return f"{location}.{key}" if location else str(key)


def _custom(schema: Any, keyword: str) -> str | None:
    message = schema.get("x-message") if isinstance(schema, dict) else None
    if isinstance(message, dict):
        return message.get(keyword)
    return message


def _default_message(error: ValidationError) -> str:
    keyword, expected = error.validator, error.validator_value
    if keyword == "type":
        types = [expected] if isinstance(expected, str) else list(expected)
        return f"Must be {' or '.join(_TYPE_NAMES[t] for t in types if t != 'null')}."
    if keyword == "enum":
        return f"Must be one of: {', '.join(repr(value) for value in expected if value is not None)}."
    if keyword == "const":
        return f"Must be {expected!r}."
    if keyword in ("minimum", "exclusiveMinimum"):
        return f"Must be {'at least' if keyword == 'minimum' else 'more than'} {expected}."
    if keyword in ("maximum", "exclusiveMaximum"):
        return f"Must be {'at most' if keyword == 'maximum' else 'less than'} {expected}."
    if keyword == "minLength":
        return "Must not be empty." if expected == 1 else f"Must be at least {expected} characters."
    if keyword == "maxLength":
        return f"Must be at most {expected} characters."
    if keyword == "minItems":
        return f"Must have at least {expected} item{'s' if expected != 1 else ''}."
    if keyword == "maxItems":
        return f"Must have at most {expected} items."
    if keyword == "uniqueItems":
        return "Items must be unique."
    if keyword == "pattern":
        return f"Must match {expected}."
    return f"Not valid ({keyword})."


class DocumentSchema:
    """One JSON Schema (checked when it is built), applied to documents or to one node of them.

    `root` names the document in the locations of its unknown top-level keys (`org.bogus`).
    Allowed keys are those of `properties` (the schemas here use no `patternProperties`).
    """

    def __init__(self, schema: dict[str, Any], *, root: str = "") -> None:
        _Validator.check_schema(schema)
        self._validator = _Validator(schema)
        self.root = root

    def problems(self, document: Any, *, at: str = "") -> Iterator[tuple[str, str]]:
        """(location, message) for every problem, each once; `at` is where `document` sits in a
        larger one (a node checked on its own: `workspaces[0].children[1]`)."""
        seen: set[tuple[str, str]] = set()
        for error in self._validator.iter_errors(document):
            for problem in self._describe(error, at):
                if problem not in seen:  # `required` fails once per missing key
                    seen.add(problem)
                    yield problem

    def _describe(self, error: ValidationError, at: str) -> Iterator[tuple[str, str]]:
        location = at
        for key in error.absolute_path:
            location = _join(location, key)
        if error.validator == "additionalProperties":
            message = _custom(error.schema, "additionalProperties") or "Unknown field."
            allowed = error.schema.get("properties", {})
            for key in sorted((key for key in error.instance if key not in allowed), key=str):
                yield _join(location or self.root, key), message
        elif error.validator == "required":
            properties = error.schema.get("properties", {})
            for key in error.validator_value:
                if key not in error.instance:
                    message = _custom(properties.get(key), "required") or _custom(error.schema, "required")
                    yield _join(location, key), message or "Required."
        else:
            message = _custom(error.schema, error.validator) or _default_message(error)
            yield location or self.root, message.replace("{value}", repr(error.instance)[:100])

    def check(self, document: Any, errors: ErrorCollector, *, at: str = "") -> bool:
        """Add every problem to `errors`; True when there was none."""
        valid = True
        for location, message in self.problems(document, at=at):
            valid = False
            errors.add(location, message)
        return valid
