"""Which A2A version a workspace agent speaks: forced by the workspace, or found out (`auto`).

`auto` decides, in order: the choice remembered for this workspace and url (Django's cache, for
`A2A_PROTOCOL_CACHE_SECONDS`); the agent card at the url's origin (`/.well-known/agent-card.json`,
then the legacy `/.well-known/agent.json`), taking the newest version it lists a JSON-RPC
interface for; else 1.0, with one retry in 0.3 when the agent refuses it (see `delivery.py`).

The card is read for its versions only: no URL it names is ever called, so a card cannot send a
delivery to another host. Any failure to read it just means "no usable card".
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.cache import cache

from common.http import HttpError, http_request
from workspaces.a2a import PROTOCOL_0_3, PROTOCOL_1_0, a2a_policy

logger = logging.getLogger(__name__)

AUTO = "auto"
CARD_PATHS = ("/.well-known/agent-card.json", "/.well-known/agent.json")
CARD_TIMEOUT_SECONDS = 10.0
CARD_MAX_BYTES = 256 * 1024
_VERSION = re.compile(r"^\s*v?(\d+)(?:\.(\d+))?")


def version_protocol(version: Any) -> str | None:
    """The wire version this client would speak for a card's `protocolVersion`: 1.x → "1.0",
    0.2–0.3 (both `message/send`) → "0.3", anything else → None."""
    match = _VERSION.match(version) if isinstance(version, str) else None
    if not match:
        return None
    major, minor = int(match.group(1)), int(match.group(2) or 0)
    if major == 1:
        return PROTOCOL_1_0
    if major == 0 and minor >= 2:
        return PROTOCOL_0_3
    return None


def _same_endpoint(a: Any, b: str) -> bool:
    if not isinstance(a, str):
        return False
    x, y = urlsplit(a), urlsplit(b)
    return (x.scheme.lower(), x.netloc.lower(), x.path.rstrip("/")) == (
        y.scheme.lower(),
        y.netloc.lower(),
        y.path.rstrip("/"),
    )


def _interfaces(card: dict[str, Any]) -> list[tuple[Any, Any, Any]]:
    """(binding, version, url) of every interface: 1.0 `supportedInterfaces`, or the 0.3 layout
    (`url` + `preferredTransport` + `protocolVersion`, `additionalInterfaces`)."""
    listed = card.get("supportedInterfaces")
    if isinstance(listed, list) and listed:
        return [
            (i.get("protocolBinding"), i.get("protocolVersion"), i.get("url"))
            for i in listed
            if isinstance(i, dict)
        ]
    if not card.get("url"):
        return []
    version = card.get("protocolVersion") or PROTOCOL_0_3
    entries = [(card.get("preferredTransport") or "JSONRPC", version, card.get("url"))]
    extra = card.get("additionalInterfaces")
    if isinstance(extra, list):
        entries += [(i.get("transport"), version, i.get("url")) for i in extra if isinstance(i, dict)]
    return entries


def card_protocol(card: Any, *, url: str) -> str | None:
    """The newest version `card` offers over JSON-RPC, or None when it offers none we speak.

    Interfaces at the workspace url are preferred; when none is there (cards often name a public
    address the service does not use), every JSON-RPC interface counts.
    """
    if not isinstance(card, dict):
        return None
    jsonrpc = [
        (version, where)
        for binding, version, where in _interfaces(card)
        if isinstance(binding, str) and binding.upper() == "JSONRPC"
    ]
    here = [entry for entry in jsonrpc if _same_endpoint(entry[1], url)]
    offered = {version_protocol(version) for version, _ in (here or jsonrpc)}
    for protocol in (PROTOCOL_1_0, PROTOCOL_0_3):
        if protocol in offered:
            return protocol
    return None


def card_urls(url: str) -> list[str]:
    parts = urlsplit(url)
    return [f"{parts.scheme}://{parts.netloc}{path}" for path in CARD_PATHS]


def agent_card_protocol(*, url: str) -> str | None:
    """The version the agent's card offers, through the same guarded client and network policy
    as deliveries; None (never an exception) when no card is usable."""
    for card_url in card_urls(url):
        try:
            response = http_request(
                "GET",
                card_url,
                headers={"Accept": "application/json"},
                timeout=min(CARD_TIMEOUT_SECONDS, float(settings.A2A_TIMEOUT_SECONDS)),
                max_bytes=CARD_MAX_BYTES,
                policy=a2a_policy(),
            )
            if not response.ok:
                continue
            protocol = card_protocol(json.loads(response.content), url=url)
        except (HttpError, ValueError, RecursionError) as exc:  # never fails a delivery
            logger.info("agent card %s not usable (%s)", card_url, type(exc).__name__)
            continue
        if protocol:
            return protocol
    return None


def _cache_key(workspace: Any) -> str:
    digest = hashlib.sha256(workspace.url.encode()).hexdigest()[:16]
    return f"a2a-protocol:{workspace.pk}:{digest}"


def protocol_remembered(*, workspace: Any) -> str | None:
    value = cache.get(_cache_key(workspace))
    return value if value in (PROTOCOL_1_0, PROTOCOL_0_3) else None


def protocol_remember(*, workspace: Any, protocol: str) -> None:
    cache.set(_cache_key(workspace), protocol, timeout=settings.A2A_PROTOCOL_CACHE_SECONDS)


def protocol_forget(*, workspace: Any) -> None:
    cache.delete(_cache_key(workspace))
