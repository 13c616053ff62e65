"""YAML for untrusted documents (org.yaml, plugin.yaml, template.yaml).

Safe loader only, and stricter than `yaml.safe_load`: anchors and aliases are refused before
anything is expanded (no alias bombs), explicit tags are refused (`!!python/object` and the
like), nesting is capped, dates stay strings, duplicate keys are refused, and `.nan`/`.inf`, NUL characters and lone surrogates are refused
(so values are always storable in PostgreSQL JSON and text columns), and the input size is
capped before parsing.
"""

from __future__ import annotations

from typing import Any

import yaml

from common.errors import ApplicationError, PayloadTooLarge
from common.storable import Unstorable, json_problem

MAX_YAML_BYTES = 1024 * 1024
MAX_YAML_DEPTH = 64
_CORE_TAGS = {f"tag:yaml.org,2002:{name}" for name in ("str", "int", "float", "bool", "null", "seq", "map")}


class YamlError(ApplicationError):
    code = "invalid_yaml"
    message = "The YAML document is not valid."


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses anchors, aliases, explicit tags and deep nesting."""

    max_depth = MAX_YAML_DEPTH

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def _refuse(self, reason: str, event: Any) -> YamlError:
        mark = getattr(event, "start_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        return YamlError(f"YAML refused: {reason}{where}.")

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise self._refuse("aliases are not allowed", event)
        if getattr(event, "anchor", None) is not None:
            raise self._refuse("anchors are not allowed", event)
        tag = getattr(event, "tag", None)
        if tag is not None and tag != "!" and tag not in _CORE_TAGS:
            raise self._refuse("explicit tags are not allowed", event)
        self._depth += 1
        if self._depth > self.max_depth:
            raise self._refuse(f"nesting deeper than {self.max_depth} levels", event)
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        # YAML requires unique keys; PyYAML would silently keep the last one.
        if isinstance(node, yaml.MappingNode):
            # Python equality on purpose: `1` and `true` would collapse into one dict key too.
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=deep)
                try:
                    duplicate = key in seen
                except TypeError:
                    continue  # unhashable: the base class reports it
                if duplicate:
                    raise self._refuse(f"duplicate key {repr(key)[:100]}", key_node)
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


# Timestamps stay plain strings: org.yaml values end up in JSON columns.
_StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


_UNSTORABLE_MESSAGES = {
    Unstorable.NON_FINITE: "YAML refused: .nan and .inf are not allowed (values must be JSON numbers).",
    Unstorable.NUL: "YAML refused: strings may not contain NUL characters.",
    Unstorable.SURROGATE: "YAML refused: strings may not contain unpaired surrogates.",
}


def load_yaml(text: str | bytes, *, max_bytes: int = MAX_YAML_BYTES, max_depth: int = MAX_YAML_DEPTH) -> Any:
    """Parse one YAML document; 413 `payload_too_large` over `max_bytes`, else 400 `invalid_yaml`."""
    raw = text.encode() if isinstance(text, str) else text
    if len(raw) > max_bytes:
        raise PayloadTooLarge(f"The YAML document is larger than {max_bytes} bytes.")
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise YamlError("The YAML document is not valid UTF-8.") from None
    loader_class = type("_Loader", (_StrictLoader,), {"max_depth": max_depth})
    try:
        loader = loader_class(decoded)  # the reader refuses control characters right here
    except yaml.reader.ReaderError as exc:
        raise YamlError(
            f"The YAML document is not valid: {exc.reason} (at character {exc.position + 1})."
        ) from None
    try:
        document = loader.get_single_data()
        problem = json_problem(document)
        if problem is not None:
            raise YamlError(_UNSTORABLE_MESSAGES[problem])
        return document
    except YamlError:
        raise
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise YamlError(f"The YAML document is not valid: {problem}{where}.") from None
    except RecursionError:
        raise YamlError("The YAML document is nested too deeply.") from None
    finally:
        loader.dispose()
