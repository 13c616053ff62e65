"""common.storable: the one check (and cleaner) for what PostgreSQL text and jsonb can hold."""

from __future__ import annotations

import math

import pytest

from common.storable import Unstorable, json_problem, storable_json, storable_text, text_problem


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", None),
        ("plain", None),
        ("emoji 😀 and é", None),
        ("\\0 is two characters", None),
        ("\x00", Unstorable.NUL),
        ("a\x00b", Unstorable.NUL),
        ("\ud800", Unstorable.SURROGATE),
        ("x\udfffy", Unstorable.SURROGATE),
        ("\x00\ud800", Unstorable.NUL),
    ],
)
def test_text_problem(text, problem):
    assert text_problem(text) == problem


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ({"a": [1, 2.5, None, True, "x", {"b": "c"}]}, None),
        ("\x00", Unstorable.NUL),
        ({"k": "v\x00"}, Unstorable.NUL),
        ({"k\x00": 1}, Unstorable.NUL),
        ({"a": {"b": [{"c\ud800": 1}]}}, Unstorable.SURROGATE),
        ({"a": [[["\ud800"]]]}, Unstorable.SURROGATE),
        ([1, {"x": math.inf}], Unstorable.NON_FINITE),
        ({"x": -math.inf}, Unstorable.NON_FINITE),
        ({"x": math.nan}, Unstorable.NON_FINITE),
        ({math.nan: 1}, Unstorable.NON_FINITE),
        ((("a", "\x00"),), Unstorable.NUL),
    ],
)
def test_json_problem_walks_keys_and_values(value, problem):
    assert json_problem(value) == problem


def _nested(levels: int) -> list:
    value: list = []
    for _ in range(levels - 1):
        value = [value]
    return value


def test_json_problem_depth_edges():
    assert json_problem(_nested(64), max_depth=64) is None
    assert json_problem(_nested(65), max_depth=64) == Unstorable.TOO_DEEP
    assert json_problem({"a": {"b": {}}}, max_depth=3) is None
    assert json_problem({"a": {"b": {"c": {}}}}, max_depth=3) == Unstorable.TOO_DEEP
    # Scalars do not count as a level; without max_depth any depth is fine.
    assert json_problem({"a": {"b": "leaf"}}, max_depth=2) is None
    assert json_problem(_nested(100_000)) is None


def test_storable_text_cleans_what_the_checks_refuse():
    assert storable_text("a\x00b \ud83d c") == "ab ? c"
    assert storable_text("already fine é") == "already fine é"
    for dirty in ("\x00", "\ud800", "x\udc00\x00y"):
        assert text_problem(storable_text(dirty)) is None


def test_storable_json_cleans_nested_keys_and_values():
    dirty = {"k\x00": ["v\ud800", {"deep\x00": ("t\x00",)}], 7: 1.5, "ok": None}
    clean = storable_json(dirty)
    assert clean == {"k": ["v?", {"deep": ["t"]}], "7": 1.5, "ok": None}
    assert json_problem(clean) is None
