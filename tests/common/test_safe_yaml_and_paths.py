"""Safe YAML and the path guard, shared by plugins, templates and org import."""

from __future__ import annotations

import os
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.errors import PayloadTooLarge
from common.paths import InvalidPath, read_text_inside, resolve_inside
from common.safe_yaml import YamlError, load_yaml


def test_plain_document():
    assert load_yaml("name: x\nlist: [1, 2]\nwhen: 2026-01-01\n") == {
        "name": "x",
        "list": [1, 2],
        "when": "2026-01-01",
    }


def test_alias_bomb_refused_quickly():
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(20)
    )
    started = time.monotonic()
    with pytest.raises(YamlError) as caught:
        load_yaml(bomb)
    assert time.monotonic() - started < 1
    assert caught.value.code == "invalid_yaml"


@pytest.mark.parametrize(
    "text",
    ["x: !!python/object:os.system {}\n", "x: !!python/name:os.system\n", "x: !custom 1\n", "x: *nope\n"],
)
def test_tags_and_aliases_refused(text):
    with pytest.raises(YamlError):
        load_yaml(text)


def test_depth_limit_edges():
    def nested(depth: int) -> str:
        return "[" * (depth - 1) + "1" + "]" * (depth - 1)

    assert load_yaml(nested(64)) is not None
    with pytest.raises(YamlError):
        load_yaml(nested(65))


def test_size_limit_edges():
    body = "a: " + "x" * (1024 * 1024 - 4) + "\n"
    assert len(body.encode()) == 1024 * 1024
    assert load_yaml(body)["a"].startswith("x")
    with pytest.raises(PayloadTooLarge):
        load_yaml(body + " ")


def test_syntax_error_is_invalid_yaml():
    with pytest.raises(YamlError) as caught:
        load_yaml("a: [1, 2\n")
    assert "line" in caught.value.message


@pytest.mark.parametrize("text", ["%\x1a0;\x84", "a: \x07", "\x1b[31m: red"])
def test_unprintable_characters_are_invalid_yaml(text):
    """PyYAML refuses control characters while building its reader: that was a 500."""
    with pytest.raises(YamlError) as caught:
        load_yaml(text)
    assert caught.value.code == "invalid_yaml"
    assert "special characters are not allowed" in caught.value.message


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "orgs"
    (root / "prompts").mkdir(parents=True)
    (root / "prompts" / "hello.md").write_text("hi")
    sibling = tmp_path / "orgs2"
    sibling.mkdir()
    (sibling / "secret.txt").write_text("secret")
    (tmp_path / "outside.txt").write_text("outside")
    os.symlink(tmp_path / "outside.txt", root / "escape.txt")
    os.symlink(root / "prompts" / "hello.md", root / "inside-link.md")
    return root


def test_guard_accepts_inside(tree):
    assert read_text_inside(tree, "prompts/hello.md") == "hi"
    assert read_text_inside(tree, "./prompts/hello.md") == "hi"
    assert read_text_inside(tree, "inside-link.md") == "hi"


@pytest.mark.parametrize(
    "reference",
    [
        "../x",
        "/etc/passwd",
        "escape.txt",
        "../orgs2/secret.txt",
        "prompts/../../outside.txt",
        "",
        "a\x00b",
        "C:\\windows",
        "\\\\server\\share",
    ],
)
def test_guard_refuses_escapes(tree, reference):
    with pytest.raises(InvalidPath) as caught:
        resolve_inside(tree, reference)
    assert caught.value.code == "invalid_path"


def test_sibling_with_same_prefix_is_outside(tmp_path):
    root = tmp_path / "orgs"
    root.mkdir()
    os.symlink(tmp_path / "orgs2", root / "link")
    (tmp_path / "orgs2").mkdir()
    with pytest.raises(InvalidPath):
        resolve_inside(root, "link/file")


_segment = st.sampled_from(["a", "b", "..", ".", "", "c.txt", "/", "~", "..."])


@settings(max_examples=300, deadline=None)
@given(st.lists(_segment, min_size=1, max_size=8))
def test_guard_property_inside_or_refused(tmp_path_factory, segments):
    root = tmp_path_factory.getbasetemp() / "guard-root"
    root.mkdir(exist_ok=True)
    reference = "/".join(segments)
    try:
        resolved = resolve_inside(root, reference)
    except InvalidPath:
        return
    assert resolved == root.resolve() or resolved.is_relative_to(root.resolve())
