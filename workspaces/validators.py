"""Checks on workspace fields shared by the API and the org import (so neither imports the other's layer)."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.core.exceptions import ValidationError

from common.http import NetworkPolicy, literal_address_refusal


def validate_agent_url(value: str) -> str:
    """http(s) URL with a host; literal link-local and metadata addresses are refused early."""
    if not value:
        return value
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValidationError("Must be an http or https URL with a host.", code="invalid")
    refusal = literal_address_refusal(parts.hostname, NetworkPolicy(allow_private=True))
    if refusal:
        raise ValidationError(refusal[0].upper() + refusal[1:] + ".", code="invalid")
    return value
