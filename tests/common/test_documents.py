"""common.documents: JSON Schema problems as readable locations and the project's messages."""

from __future__ import annotations

import re

import pytest

from common.documents import DocumentSchema, ErrorCollector, as_list, fullmatch
from common.errors import ApplicationError
from common.safe_yaml import YamlError

SCHEMA = DocumentSchema(
    {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "minLength": 1, "x-message": "Required: a name."},
            "tier": {"type": ["integer", "null"], "minimum": 1, "maximum": 4},
            "mode": {"enum": ["a", "b"]},
            "items": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"size": {"type": "integer", "x-message": {"type": "Whole numbers only."}}},
                    "required": ["size"],
                },
            },
            "keys": {
                "type": "object",
                "propertyNames": {"pattern": "^[a-z]+$", "x-message": "Key {value} is bad."},
            },
        },
        "required": ["name"],
    },
    root="doc",
)


def _problems(document, **kwargs):
    return list(SCHEMA.problems(document, **kwargs))


def test_a_valid_document_has_no_problems():
    assert _problems({"name": "x", "tier": None, "items": [{"size": 3}], "keys": {"ok": 1}}) == []


def test_locations_follow_the_document():
    document = {"name": "x", "items": [{"size": 1}, {"size": "big", "extra": 1}, {}]}
    assert _problems(document, at="workspaces[0]") == [
        ("workspaces[0].items[1].extra", "Unknown field."),
        ("workspaces[0].items[1].size", "Whole numbers only."),
        ("workspaces[0].items[2].size", "Required."),
    ]


def test_unknown_top_level_keys_are_named_after_the_root():
    assert _problems({"name": "x", "b": 1, "a": 2}) == [
        ("doc.a", "Unknown field."),
        ("doc.b", "Unknown field."),
    ]
    assert DocumentSchema({"type": "object", "additionalProperties": False}).problems(
        {"k": 1}
    ).__next__() == (
        "k",
        "Unknown field.",
    )


def test_a_missing_key_takes_its_property_message():
    assert _problems({}) == [("name", "Required: a name.")]
    assert _problems({"name": ""}) == [("name", "Required: a name.")]


def test_integers_are_integer_literals():
    for tier in (2.0, True, "2"):
        assert _problems({"name": "x", "tier": tier}) == [("tier", "Must be an integer.")]
    assert _problems({"name": "x", "tier": 5}) == [("tier", "Must be at most 4.")]
    assert _problems({"name": "x", "tier": 0}) == [("tier", "Must be at least 1.")]


def test_default_messages_do_not_echo_the_value():
    [(location, message)] = _problems({"name": "x", "mode": "secret-value"})
    assert (location, message) == ("mode", "Must be one of: 'a', 'b'.")
    [(location, message)] = _problems({"name": ["secret-value"]})
    assert location == "name" and "secret-value" not in message


def test_a_value_placeholder_names_a_refused_key():
    assert _problems({"name": "x", "keys": {"Bad": 1}}) == [("keys", "Key 'Bad' is bad.")]


def test_the_root_itself():
    assert _problems([1]) == [("doc", "Must be an object.")]


def test_check_collects_into_the_api_error_shape():
    errors = ErrorCollector()
    assert SCHEMA.check({"name": "x"}, errors)
    assert not SCHEMA.check({"tier": 9}, errors, at="n")
    with pytest.raises(ApplicationError) as caught:
        errors.raise_if_any("The document is not valid.")
    assert caught.value.status_code == 400 and caught.value.code == "invalid_request"
    assert caught.value.message == "The document is not valid. n.tier: Must be at most 4."
    assert caught.value.details == {"n.tier": ["Must be at most 4."], "n.name": ["Required: a name."]}
    with pytest.raises(YamlError) as caught_yaml:
        errors.raise_if_any("plugin.yaml:", error=YamlError)
    assert caught_yaml.value.code == "invalid_yaml"


def test_fullmatch_refuses_a_trailing_newline():
    pattern = fullmatch(r"^[a-z]{1,3}$")
    assert re.search(pattern, "abc") and not re.search(pattern, "abc\n") and not re.search(pattern, "abcd")


def test_as_list():
    assert as_list([1]) == [1] and as_list(None) == [] and as_list("abc") == [] and as_list(5) == []


def test_an_invalid_schema_is_refused_when_built():
    with pytest.raises(Exception, match="not valid"):
        DocumentSchema({"type": "no-such-type"})
