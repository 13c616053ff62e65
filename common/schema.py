"""OpenAPI generation hooks: the schema states what the server enforces, for every operation.

Generic on purpose, so a new view is documented exactly without repeating itself: strict input
serializers refuse unknown fields (`additionalProperties: false`), and every operation lists the
error answers the shared machinery can give (bad query or body, auth, missing path objects, body
too large, throttling).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiSerializerExtension

ERROR_REF = {"$ref": "#/components/schemas/Error"}
ERROR_DESCRIPTIONS = {
    "400": "Invalid body (`invalid_request`, `unknown_field`, domain codes) or query parameter "
    "(`invalid_parameter`).",
    "401": "No valid credential (`unauthenticated`).",
    "403": "The credential may not do this (`forbidden`).",
    "404": "A path object does not exist or is not the workspace's (`not_found`).",
    "413": "The body is too large (`payload_too_large`).",
    "429": "Too many requests with this token (`throttled`); see `Retry-After`.",
}
BODY_METHODS = {"post", "put", "patch"}


class StrictSerializerExtension(OpenApiSerializerExtension):
    """Input of a `StrictInputMixin` serializer: unknown fields are refused, so the schema says so.

    A serializer may name `exactly_one_of` (fields of which exactly one must be given); the
    request schema then states it as a `oneOf` of `required` lists.
    """

    target_class = "common.serializers.StrictInputMixin"
    match_subclasses = True

    def map_serializer(self, auto_schema: Any, direction: str) -> dict[str, Any]:
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        if direction == "request":
            schema["additionalProperties"] = False
            one_of = getattr(self.target, "exactly_one_of", ())
            if one_of:
                schema["oneOf"] = [{"required": [name]} for name in one_of]
        return schema


def drop_trailing_slash_twins(endpoints: list[tuple[Any, ...]], **kwargs: Any) -> list[tuple[Any, ...]]:
    """Every API path also answers with a trailing slash; document each path once, without it."""
    return [
        endpoint
        for endpoint in endpoints
        if endpoint[0] == "/" or not endpoint[0].endswith("/") or endpoint[0].startswith("/api/")
    ]


def _error_statuses(method: str, operation: dict[str, Any]) -> list[str]:
    statuses = []
    parameters = operation.get("parameters", [])
    if any(p["in"] == "query" for p in parameters) or "requestBody" in operation:
        statuses.append("400")
    if operation.get("security"):
        statuses += ["401", "403", "429"]
    if any(p["in"] == "path" for p in parameters):
        statuses.append("404")
    if method in BODY_METHODS:
        statuses.append("413")
    return statuses


def add_error_responses(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """List, on every operation, the error answers common to all views (SPEC §1, §2, §11).

    A query parameter or a body can be refused (400), an authenticated operation can answer
    401, 403 and 429, a path naming an object can answer 404, and a body over the size limit
    413. Statuses a view declares itself are kept as they are. A present but empty query value
    is refused everywhere (`common.pagination.query_value`), so text query parameters say
    `minLength: 1`.
    """
    for path_item in result.get("paths", {}).values():
        for method, operation in path_item.items():
            for parameter in operation.get("parameters", []):
                schema = parameter.get("schema", {})
                if parameter["in"] == "query" and schema.get("type") == "string":
                    schema.setdefault("minLength", 1)
            responses = operation.setdefault("responses", {})
            for status in _error_statuses(method, operation):
                if status not in responses:
                    responses[status] = {
                        "content": {"application/json": {"schema": ERROR_REF}},
                        "description": ERROR_DESCRIPTIONS[status],
                    }
    return result
