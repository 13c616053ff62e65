"""The shapes of org.yaml, bundles and template.yaml, as JSON Schemas (see common/documents.py).

Trees are checked one workspace at a time (`ORG_NODE`, `BUNDLE_NODE`, each with its label as
location) rather than with one recursive schema: the importers walk the tree anyway, and a
64-level tree of 10,000 workspaces stays far from Python's recursion limit that way. What needs
the server or other data stays in code: known runtimes, reachable agent URLs, templates that
exist, files inside the org folder, unique schedule names, secret key rules, limits on size,
depth and count, and each section's own checks when the tree is created.

`null` (or leaving a key out) means the default wherever the importers always took it so.
"""

from __future__ import annotations

from typing import Any

from common.documents import DocumentSchema, fullmatch
from templates_app.models import SLUG_PATTERN
from workspaces.models import MAX_CONCURRENT_TASKS_LIMIT, MEMORY_KEY_PATTERN, A2AProtocol

BUNDLE_FORMAT = "integrations-bundle"
BUNDLE_VERSION = 1

_PROTOCOLS = ", ".join(f'"{value}"' for value in A2AProtocol.values)

# The Workspace columns a node may set, checked as `POST /workspaces` checks them.
WORKSPACE_FIELDS: dict[str, Any] = {
    "name": {
        "type": "string",
        "minLength": 1,
        "maxLength": 200,
        "pattern": r"\S",
        "x-message": "Required: a string of 1 to 200 characters.",
    },
    "role": {
        "type": ["string", "null"],
        "maxLength": 500,
        "x-message": "Must be a string of at most 500 characters.",
    },
    "runtime": {"type": ["string", "null"], "x-message": "Must be a runtime name (a string)."},
    "tier": {
        "type": ["integer", "null"],
        "minimum": 1,
        "maximum": 4,
        "x-message": "Must be an integer from 1 to 4.",
    },
    "max_concurrent_tasks": {
        "type": ["integer", "null"],
        "minimum": 1,
        "maximum": MAX_CONCURRENT_TASKS_LIMIT,
        "x-message": f"Must be an integer from 1 to {MAX_CONCURRENT_TASKS_LIMIT}.",
    },
    "url": {
        "type": ["string", "null"],
        "maxLength": 2048,
        "x-message": "Must be a string of at most 2048 characters.",
    },
    "a2a_protocol": {
        "enum": [*A2AProtocol.values, None],
        "x-message": f"Must be one of {_PROTOCOLS} (a string: quote it in YAML).",
    },
    "config": {"type": ["object", "null"]},
}

# The fields `defaults:` of an org.yaml may set for every node.
DEFAULT_FIELDS = ("runtime", "tier", "max_concurrent_tasks", "a2a_protocol")

MEMORY: dict[str, Any] = {
    "type": ["object", "null"],
    "propertyNames": {
        "type": "string",
        "pattern": fullmatch(MEMORY_KEY_PATTERN),
        "x-message": f"Memory key {{value}} must match {MEMORY_KEY_PATTERN}.",
    },
}

PLUGIN_SOURCES: dict[str, Any] = {
    "type": ["array", "null"],
    "items": {
        "type": "string",
        "pattern": r"\S",
        "x-message": "Must be a plugin source such as local://name.",
    },
}

# Checked node by node: a child is only required to be an object by its own check.
CHILDREN: dict[str, Any] = {"type": ["array", "null"]}


def _objects(properties: dict[str, Any], **rules: Any) -> dict[str, Any]:
    """A list (or null) of objects with only these keys."""
    item = {"type": "object", "additionalProperties": False, "properties": properties, **rules}
    return {"type": ["array", "null"], "items": item}


# --- org.yaml -----------------------------------------------------------------------------------

ORG_SCHEDULE = {
    "name": {"type": ["string", "null"]},
    "expression": {"type": "string", "x-message": "Required: a cron expression."},
    "timezone": {"type": "string"},
    "prompt": {"type": "string", "x-message": "Required: a string (or prompt_file)."},
    "prompt_file": {"type": "string"},
    "enabled": {"type": "boolean"},
}

ORG_CHANNEL = {
    "platform": {"type": "string", "x-message": "Required: a platform."},
    "config": {"type": ["object", "null"]},
    "allowlist": {"type": ["array", "null"]},
    "name": {"type": ["string", "null"]},
    "enabled": {"type": "boolean"},
}

ORG = DocumentSchema(
    {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "pattern": r"\S", "x-message": "Required: the org name."},
            "description": {"type": ["string", "null"]},
            "defaults": {
                "type": ["object", "null"],
                "additionalProperties": False,
                "properties": {
                    **{key: WORKSPACE_FIELDS[key] for key in DEFAULT_FIELDS},
                    "plugins": PLUGIN_SOURCES,
                },
            },
            "workspaces": {
                "type": "array",
                "minItems": 1,
                "x-message": "Required: a list of at least one workspace.",
            },
        },
        "required": ["name", "workspaces"],
    },
    root="org",
)

ORG_NODE = DocumentSchema(
    {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            **WORKSPACE_FIELDS,
            "template": {"type": ["string", "null"]},
            "system_prompt": {"type": "string"},
            "system_prompt_file": {"type": "string"},
            "schedules": _objects(
                ORG_SCHEDULE,
                required=["expression"],
                **{
                    "not": {"type": "object", "required": ["prompt", "prompt_file"]},
                    "if": {"not": {"required": ["prompt_file"]}},
                    "then": {"required": ["prompt"], "x-message": ORG_SCHEDULE["prompt"]["x-message"]},
                    "x-message": {"not": "Give prompt or prompt_file, not both."},
                },
            ),
            "channels": _objects(ORG_CHANNEL, required=["platform"]),
            "plugins": PLUGIN_SOURCES,
            "memory": MEMORY,
            "children": CHILDREN,
        },
        "required": ["name"],
        "not": {"type": "object", "required": ["system_prompt", "system_prompt_file"]},
        "x-message": {"not": "Give system_prompt or system_prompt_file, not both."},
    }
)

# --- Bundles ------------------------------------------------------------------------------------

BUNDLE = DocumentSchema(
    {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "format": {"const": BUNDLE_FORMAT, "x-message": f"Must be {BUNDLE_FORMAT!r}."},
            "version": {
                "type": "integer",
                "const": BUNDLE_VERSION,
                "x-message": f"Must be {BUNDLE_VERSION}.",
            },
            "exported_at": True,
            "workspace": {"type": "object", "x-message": "Required: the root workspace object."},
        },
        "required": ["format", "version", "workspace"],
    },
    root="bundle",
)

# Schedules and channels are checked by their sections when the tree is created.
_ANY = True
BUNDLE_NODE = DocumentSchema(
    {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            **WORKSPACE_FIELDS,
            "template": {
                "type": ["string", "null"],
                "pattern": fullmatch(f"(?:{SLUG_PATTERN.removeprefix('^').removesuffix('$')})?"),
                "x-message": f"Must be a template slug ({SLUG_PATTERN}) or null.",
            },
            "secrets": {
                "type": ["array", "null"],
                "uniqueItems": True,
                "x-message": {"type": "Must be a list of keys.", "uniqueItems": "Keys must be unique."},
            },
            "memory": MEMORY,
            "schedules": _objects(
                dict.fromkeys(("name", "expression", "timezone", "prompt", "enabled", "source"), _ANY)
            ),
            "channels": _objects(dict.fromkeys(("platform", "name", "allowlist", "enabled", "config"), _ANY)),
            "plugins": _objects(
                {
                    "name": _ANY,
                    "source": {"type": "string", "minLength": 1, "x-message": "Required: a plugin source."},
                },
                required=["source"],
            ),
            "children": CHILDREN,
        },
        "required": ["name"],
    }
)

# --- template.yaml ------------------------------------------------------------------------------

TEMPLATE_MANIFEST = DocumentSchema(
    {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "name": {
                "type": ["string", "null"],
                "maxLength": 200,
                "x-message": "Must be a string of at most 200 characters.",
            },
            "description": {"type": ["string", "null"]},
            "runtime": {"type": ["string", "null"], "x-message": "Unknown runtime."},
            "tier": {
                "type": "integer",
                "minimum": 1,
                "maximum": 4,
                "x-message": "Must be an integer from 1 to 4.",
            },
            # Checked by validate_template_config: config_schema is itself a JSON Schema.
            "config": True,
            "config_schema": True,
        },
    }
)
