"""What `OPTIONS` answers on API routes."""

from __future__ import annotations

from typing import Any

from rest_framework.metadata import SimpleMetadata
from rest_framework.request import Request


class SchemaPointerMetadata(SimpleMetadata):
    """Name, description, media types and where the fields are described: the OpenAPI schema.

    DRF's default also describes the serializer fields of PUT and POST, which needs an object
    and a queryset the keyed views (secrets, memory) do not have: that was a 500. The schema at
    `/api/schema/` describes every body exactly, so OPTIONS points there instead.
    """

    def determine_metadata(self, request: Request, view: Any) -> dict[str, Any]:
        metadata = super().determine_metadata(request, view)
        metadata["schema"] = "/api/schema/"
        return metadata

    def determine_actions(self, request: Request, view: Any) -> dict[str, Any]:
        return {}
