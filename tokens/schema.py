"""OpenAPI descriptions of our authentication classes (imported by the app config)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "tokens.authentication.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "Workspace token (`wst_…`), admin token (`adm_…`) or ADMIN_TOKEN.",
        }


class StaffSessionScheme(OpenApiAuthenticationExtension):
    target_class = "tokens.authentication.StaffSessionAuthentication"
    name = "staffSession"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "apiKey",
            "in": "cookie",
            "name": "sessionid",
            "description": "Admin console session of a superuser (other staff: 403). CSRF applies.",
        }
