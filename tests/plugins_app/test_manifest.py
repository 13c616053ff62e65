"""plugin.yaml: shapes come from plugins_app/schemas.py; a bad manifest is one invalid_yaml."""

from __future__ import annotations

import pytest

from common.safe_yaml import YamlError
from plugins_app.registry import PluginManifest, manifest_parse


def test_a_valid_manifest_is_read_as_before():
    raw = b"name: ignored\nversion: 1.0\ndescription: d\nauthor: 7\ntags: [a, b]\nskills: [x, {name: y}]\nextra: ok\n"
    assert manifest_parse(raw, name="tools") == PluginManifest(
        name="tools",
        version="1.0",
        description="d",
        author="7",
        tags=["a", "b"],
        runtimes=[],
        skills=["x", {"name": "y"}],
    )
    assert manifest_parse(b"version:\ntags:\n", name="t") == PluginManifest(name="t")


@pytest.mark.parametrize(
    ("raw", "location"),
    [
        (b"version: [1]\n", "version"),
        (b"version: true\n", "version"),
        (b"version: '" + b"v" * 65 + b"'\n", "version"),
        (b"version: 1" + b"0" * 64 + b"\n", "version"),  # 65 characters once read as text
        (b"author: '" + b"a" * 201 + b"'\n", "author"),
        (b"tags: web\n", "tags"),
        (b"tags: [a, '']\n", "tags[1]"),
        (b"runtimes: [1]\n", "runtimes[0]"),
        (b"tags: [" + b", ".join(b"t%d" % i for i in range(101)) + b"]\n", "tags"),
        (b"skills: [1]\n", "skills[0]"),
    ],
)
def test_bad_manifests_name_the_field(raw, location):
    with pytest.raises(YamlError) as caught:
        manifest_parse(raw, name="tools")
    assert caught.value.code == "invalid_yaml"
    assert caught.value.message.startswith(f"plugin.yaml: {location}: ")
    assert location in caught.value.details


def test_edges_of_the_text_limits():
    assert manifest_parse(b"version: '" + b"v" * 64 + b"'\n", name="t").version == "v" * 64
    assert manifest_parse(b"version: " + b"9" * 64 + b"\n", name="t").version == "9" * 64
    assert manifest_parse(b"version: -" + b"9" * 63 + b"\n", name="t").version == "-" + "9" * 63


def test_a_document_that_is_not_a_mapping():
    with pytest.raises(YamlError, match="must be a mapping"):
        manifest_parse(b"- a\n", name="t")
