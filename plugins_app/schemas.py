"""The shape of plugin.yaml, as a JSON Schema (see common/documents.py).

Every key is optional and unknown keys are ignored (manifests written for other tools carry
more). The plugin's name comes from its source, never from the file.
"""

from __future__ import annotations

from typing import Any

from common.documents import DocumentSchema

TEXT_LIMITS = {"version": 64, "author": 200, "description": 4000}
LIST_MAX_ITEMS = 100


def _text(limit: int) -> dict[str, Any]:
    """A string, or a number kept as its text (`version: 1.0`), of at most `limit` characters."""
    return {
        "type": ["string", "number", "null"],
        "maxLength": limit,
        # A number's text is at most `limit` characters too (a minus sign included).
        "exclusiveMinimum": -(10 ** (limit - 1)),
        "exclusiveMaximum": 10**limit,
        "x-message": {
            "type": "Must be a string.",
            "maxLength": f"Must be at most {limit} characters.",
            "exclusiveMinimum": f"Must be at most {limit} characters.",
            "exclusiveMaximum": f"Must be at most {limit} characters.",
        },
    }


_STRINGS = {
    "type": ["array", "null"],
    "maxItems": LIST_MAX_ITEMS,
    "items": {"type": "string", "minLength": 1, "x-message": "Must be a non-empty string."},
    "x-message": {"type": "Must be a list of strings."},
}

PLUGIN_MANIFEST = DocumentSchema(
    {
        "type": "object",
        "properties": {
            **{key: _text(limit) for key, limit in TEXT_LIMITS.items()},
            "tags": _STRINGS,
            "runtimes": _STRINGS,
            "skills": {
                "type": ["array", "null"],
                "items": {"type": ["string", "object"]},
                "x-message": "Must be a list of strings or objects.",
            },
        },
    }
)
