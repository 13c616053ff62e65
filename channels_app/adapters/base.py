"""The one base class every platform adapter implements.

An adapter knows a platform's config fields, how to validate them, how to verify and parse an
inbound request (on the raw bytes, failing closed), how to send one message part (raising a
permanent or transient `SendError`), and, where the platform allows it, how to discover the bot
and its chats. Adapters hold no state: the channel's full config is passed to every call.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from django.conf import settings

from common.http import HttpError, HttpResult, NetworkPolicy, http_request
from common.parsers import loads_strict

# Outbound platform calls: short enough to keep a worker moving, long enough for a slow API.
PLATFORM_TIMEOUT_SECONDS = 15.0
PLATFORM_MAX_RESPONSE_BYTES = 1024 * 1024
# Platform APIs are public hosts; tests point them at 127.0.0.1, so private addresses are allowed
# (link-local and metadata addresses are always refused by common.http).
PLATFORM_POLICY = NetworkPolicy(allow_private=True)


# How far a signed request's timestamp may be from now, either way (Slack's rule, also applied
# to Discord and Lark): an older signature is a replay, a later one a forged clock.
SIGNATURE_WINDOW_SECONDS = 300


def current_timestamp() -> float:
    """The clock used for signature windows (a module function so tests can freeze it)."""
    return time.time()


def fresh_timestamp(value: Any) -> bool:
    """Whether a timestamp header is whole seconds within the window of now (never raises)."""
    timestamp = as_int(value)
    return timestamp is not None and abs(current_timestamp() - timestamp) <= SIGNATURE_WINDOW_SECONDS


@dataclass(frozen=True)
class ConfigField:
    key: str
    label: str
    type: str = "string"  # "string", "list", "url" or "bool"
    required: bool = False
    secret: bool = False
    help: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "label": self.label,
            "type": self.type,
            "required": self.required,
            "secret": self.secret,
            "help": self.help,
        }


class ConfigError(Exception):
    """The config does not fit the platform; `errors` maps field → messages."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        self.errors = errors
        super().__init__("invalid config")


class SendError(Exception):
    """An outbound call failed. `reason` is ours (never upstream text or a secret)."""

    def __init__(
        self, reason: str, *, transient: bool, retry_after: float | None = None, status: int | None = None
    ) -> None:
        self.reason = reason
        self.transient = transient
        self.retry_after = retry_after
        self.status = status
        super().__init__(reason)


class DiscoveryError(Exception):
    """Discovery failed: `invalid_token` when the platform refused the token, else `platform_error`."""

    def __init__(self, code: str, reason: str) -> None:
        self.code = code
        self.reason = reason
        super().__init__(reason)


@dataclass
class InboundEvent:
    """What an inbound request means once verified.

    kind: "handshake" (answer `response` and stop), "message" (route and store), or "ignored"
    (understood but nothing to do; answer `response`).
    """

    kind: str
    response: dict[str, Any] = field(default_factory=dict)
    event_id: str = ""
    chat_id: str = ""
    sender_id: str = ""
    text: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


class InboundRequest:
    """One webhook request as the adapters see it: the raw bytes and headers, and the body
    parsed at most once, on first use, whichever step (routing, verification, parsing) needs it.

    A body that cannot be read raises ValueError each time it is asked for, without a second
    parse. The payload is untrusted until a signature has verified.
    """

    __slots__ = ("_error", "_load", "_loaded", "_payload", "body", "headers")

    def __init__(self, body: bytes, headers: Mapping[str, str], load: Callable[[bytes], Any]) -> None:
        self.body = body
        self.headers = headers
        self._load = load
        self._loaded = False
        self._payload: Any = None
        self._error: ValueError | None = None

    @property
    def payload(self) -> Any:
        if not self._loaded:
            self._loaded = True
            try:
                self._payload = self._load(self.body)
            except ValueError as exc:
                self._error = exc
        if self._error is not None:
            raise ValueError("the body cannot be read") from self._error
        return self._payload

    def object(self) -> dict[str, Any]:
        """The payload when it is a JSON object, else {} (never raises): for routing hints."""
        try:
            payload = self.payload
        except ValueError:
            return {}
        return payload if isinstance(payload, dict) else {}


@dataclass(frozen=True)
class Discovery:
    bot: dict[str, str]
    chats: list[dict[str, str]]


def as_int(value: Any) -> int | None:
    """A header value as an integer, or None when it is not one (never raises)."""
    if not isinstance(value, str) or not re.fullmatch(r"-?\d{1,18}", value.strip()):
        return None
    return int(value.strip())


def retry_after_header(headers: Mapping[str, str]) -> float | None:
    raw = headers.get("Retry-After")
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if value >= 0 else None


def split_text(text: str, limit: int) -> list[str]:
    """Cut `text` into parts of at most `limit` characters; joined, the parts give `text` back.

    A cut prefers the last newline, then the last space, in the second half of the window, so
    words and lines stay whole when they can.
    """
    if limit <= 0:
        raise ValueError("limit must be positive")
    parts: list[str] = []
    rest = text
    while len(rest) > limit:
        window = rest[:limit]
        cut = window.rfind("\n")
        if cut < limit // 2:
            cut = window.rfind(" ")
        cut = cut + 1 if cut >= limit // 2 else limit
        parts.append(rest[:cut])
        rest = rest[cut:]
    if rest or not parts:
        parts.append(rest)
    return parts


def credential_digest(platform: str, value: str, *, secret_key: str | None = None) -> str:
    """A keyed hash of a credential, so channels sharing one can be found without decrypting.

    Keyed on SECRET_KEY (or `secret_key`); lookups also try SECRET_KEY_FALLBACKS
    (`credential_digests`), and `manage.py rekey_channels` rewrites stored keys after a rotation.
    """
    if not value:
        return ""
    key = _digest_key(settings.SECRET_KEY if secret_key is None else secret_key)
    return hmac.digest(key, f"{platform}:{value}".encode(), "sha256").hex()


def credential_digests(platform: str, value: str) -> tuple[str, ...]:
    """The digest under SECRET_KEY first, then under each of SECRET_KEY_FALLBACKS: rows stored
    before a rotation are still found until they are re-keyed."""
    keys = (settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS)
    return tuple(dict.fromkeys(credential_digest(platform, value, secret_key=key) for key in keys))


@functools.lru_cache(maxsize=4)
def _digest_key(secret_key: str) -> bytes:
    """The HMAC key of `credential_digest`, derived from SECRET_KEY once (it runs per webhook)."""
    return hashlib.sha256(b"integrations-api:channel-credential:" + secret_key.encode()).digest()


def platform_call(
    method: str,
    url: str,
    *,
    platform: str,
    json: Any = None,
    data: Any = None,
    params: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> HttpResult:
    """One HTTP call to a platform through common.http; transport failures become SendError."""
    try:
        return http_request(
            method,
            url,
            json=json,
            data=data,
            params=params,
            headers=headers,
            timeout=PLATFORM_TIMEOUT_SECONDS,
            max_bytes=PLATFORM_MAX_RESPONSE_BYTES,
            policy=PLATFORM_POLICY,
        )
    except HttpError as exc:
        raise SendError(f"{platform}: {exc.reason}", transient=exc.transient) from None


def json_body(result: HttpResult) -> dict[str, Any]:
    """The response body as a JSON object, or {} when it is not one."""
    try:
        body = result.json()
    except (ValueError, UnicodeDecodeError):
        return {}
    return body if isinstance(body, dict) else {}


def http_failure(platform: str, result: HttpResult, retry_after: float | None = None) -> SendError:
    """The common reading of a non-2xx answer: 429 and 5xx are transient, the rest permanent."""
    status = result.status_code
    if status == 429:
        return SendError(
            f"{platform}: rate limited (HTTP 429)",
            transient=True,
            retry_after=retry_after if retry_after is not None else retry_after_header(result.headers),
            status=status,
        )
    if status >= 500:
        return SendError(f"{platform}: server error (HTTP {status})", transient=True, status=status)
    if status in (401, 403):
        return SendError(f"{platform}: credentials refused (HTTP {status})", transient=False, status=status)
    if status == 404:
        return SendError(f"{platform}: destination not found (HTTP 404)", transient=False, status=status)
    return SendError(f"{platform}: request refused (HTTP {status})", transient=False, status=status)


_SAFE_CODE = re.compile(r"^[a-z0-9_]{1,64}$")


def safe_code(value: Any) -> str:
    """A platform's machine error code (e.g. `channel_not_found`) when it looks like one."""
    return value if isinstance(value, str) and _SAFE_CODE.match(value) else "unknown"


APPROVERS_MAX_ENTRIES = 100
APPROVAL_FIELDS = (
    ConfigField(
        "approvals",
        "Approvals in chat",
        type="bool",
        help="Post the workspace's approvals to the default chat, with buttons to decide them.",
    ),
    ConfigField(
        "approvers",
        "Approvers",
        type="list",
        help="Platform user ids allowed to decide approvals with the buttons; nobody else can.",
    ),
)


def clean_approvers(value: Any) -> list[str]:
    if not isinstance(value, list) or len(value) > APPROVERS_MAX_ENTRIES:
        raise ValueError(f"Must be a list of at most {APPROVERS_MAX_ENTRIES} user ids.")
    cleaned: list[str] = []
    for item in value:
        text = str(item).strip() if isinstance(item, (str, int)) and not isinstance(item, bool) else ""
        if not text or len(text) > 200:
            raise ValueError("Each approver must be a non-empty user id of at most 200 characters.")
        if text not in cleaned:
            cleaned.append(text)
    return cleaned


class ChannelAdapter:
    """Base class: subclasses declare `platform`, `display_name`, `fields`, limits and hooks."""

    platform: ClassVar[str]
    display_name: ClassVar[str]
    fields: ClassVar[tuple[ConfigField, ...]]
    supports_inbound: ClassVar[bool] = True
    supports_outbound: ClassVar[bool] = True
    supports_discover: ClassVar[bool] = False
    # Characters per outbound part (one API call each).
    part_limit: ClassVar[int] = 2000
    # Config keys whose value is the shared credential (fan-out group) and the chat filter.
    credential_key: ClassVar[str] = ""
    chat_filter_key: ClassVar[str] = ""
    # Whether that credential is a secret. Only a shared secret proves that two channels serve
    # the same bot; a public identifier (Discord's application id) groups channels of one
    # workspace only, and belongs to one workspace (docs/decisions.md).
    credential_is_secret: ClassVar[bool] = True

    # --- schema and config ---------------------------------------------------------------------
    @classmethod
    def describe(cls) -> dict[str, Any]:
        return {
            "platform": cls.platform,
            "display_name": cls.display_name,
            "config_schema": [f.as_dict() for f in cls.fields],
            "supports": {
                "inbound": cls.supports_inbound,
                "outbound": cls.supports_outbound,
                "discover": cls.supports_discover,
            },
        }

    @classmethod
    def secret_keys(cls) -> frozenset[str]:
        return frozenset(f.key for f in cls.fields if f.secret)

    @classmethod
    def field_keys(cls) -> frozenset[str]:
        return frozenset(f.key for f in cls.fields)

    def validate(self, config: Mapping[str, Any], *, enabled: bool) -> dict[str, Any]:
        """Check types and formats; return the normalised config (empty values dropped).

        Required secret fields are enforced only on enabled channels, so a disabled channel can
        exist without its secrets (a bundle import recreates channels that way).
        """
        errors: dict[str, list[str]] = {}
        clean: dict[str, Any] = {}
        for key in config:
            if key not in self.field_keys():
                errors.setdefault(str(key), []).append("Unknown config field.")
        for fld in self.fields:
            value = config.get(fld.key)
            if value is None or value == "" or value == []:
                if fld.required and (enabled or not fld.secret):
                    errors.setdefault(fld.key, []).append("This field is required.")
                continue
            try:
                clean[fld.key] = self.clean_field(fld, value)
            except ValueError as exc:
                errors.setdefault(fld.key, []).append(str(exc))
        if not errors:
            self.validate_together(clean, enabled=enabled, errors=errors)
        if errors:
            raise ConfigError(errors)
        return clean

    def clean_field(self, fld: ConfigField, value: Any) -> Any:
        """Type checks shared by all platforms; subclasses add format checks."""
        if fld.type == "bool":
            if not isinstance(value, bool):
                raise ValueError("Must be true or false.")
            return value
        if fld.key == "approvers":
            return clean_approvers(value)
        if fld.type == "list":
            if not isinstance(value, list):
                raise ValueError("Must be a list.")
            return value
        if not isinstance(value, str):
            raise ValueError("Must be a string.")
        value = value.strip()
        if len(value) > 2048:
            raise ValueError("Must be at most 2048 characters.")
        return value

    def validate_together(
        self, config: dict[str, Any], *, enabled: bool, errors: dict[str, list[str]]
    ) -> None:
        """Rules across fields (e.g. "at least one of"); add to `errors`."""

    def complete(self, config: dict[str, Any]) -> dict[str, Any]:
        """Fill generated values (e.g. a webhook secret) into a validated config."""
        return config

    def credential(self, config: Mapping[str, Any]) -> str:
        return str(config.get(self.credential_key) or "")

    def lookup_value(self, config: Mapping[str, Any]) -> str:
        """The channel's routing key, hashed into `lookup_key`: the value `route_key` reads from
        the requests meant for it ("" when it has none)."""
        return ""

    def chat_matches(self, config: Mapping[str, Any], chat_id: str) -> bool:
        """Does the channel's chat filter include `chat_id` (an empty filter includes every chat)?"""
        if not self.chat_filter_key:
            return True
        wanted = config.get(self.chat_filter_key)
        if not wanted:
            return True
        values = wanted if isinstance(wanted, list) else [wanted]
        return chat_id in {str(v) for v in values}

    @classmethod
    def chat_filter_sql(cls, *, config: str, chat: str) -> str:
        """`chat_matches` as a PostgreSQL condition, for statements that check the filter in the
        database (the hot path's insert): `config` is a jsonb expression (the public config),
        `chat` the chat id's placeholder. An empty filter (any falsy JSON value) takes every chat."""
        if not cls.chat_filter_key:
            return "TRUE"
        key = cls.chat_filter_key  # a class constant, never input
        return (
            f"(COALESCE({config} -> '{key}', 'null'::jsonb) IN ('null', '[]', '{{}}', '\"\"', '0', 'false') "
            f"OR {config} -> '{key}' ? {chat})"
        )

    def default_chat(self, config: Mapping[str, Any]) -> str:
        """Where a send without `chat_id` goes ("" when the destination is the config itself)."""
        return ""

    def needs_chat(self) -> bool:
        """Whether an outbound send needs a chat id (webhook-URL platforms do not)."""
        return False

    # --- inbound -------------------------------------------------------------------------------
    def load(self, body: bytes) -> Any:
        """Parse a body (JSON by default); ValueError on anything hostile (see `loads_strict`)."""
        return loads_strict(body)

    def request(self, body: bytes, headers: Mapping[str, str]) -> InboundRequest:
        return InboundRequest(body, headers, self.load)

    def route_key(self, request: InboundRequest) -> str:
        """The routing key a request carries (matched against `lookup_value`), "" when none: it
        narrows which channels are verified when the request names no channel. Untrusted."""
        return ""

    def verify(self, config: Mapping[str, Any], request: InboundRequest) -> Any:
        """Check the request (signatures on the raw bytes). Return a truthy token (the payload
        when decrypting is part of verifying) or None. Must never raise on hostile input and
        must fail closed."""
        raise NotImplementedError

    def parse(self, config: Mapping[str, Any], verified: Any, request: InboundRequest) -> InboundEvent:
        """The event of a verified request; ValueError (or TypeError, KeyError …) when the
        payload is not one."""
        raise NotImplementedError

    def ack(self, event: InboundEvent) -> dict[str, Any]:
        """The 200 body for an accepted message event."""
        return {"ok": True}

    def ignored(self, event: InboundEvent) -> dict[str, Any]:
        return {"ok": True, "status": "ignored"}

    # --- outbound ------------------------------------------------------------------------------
    def split(self, text: str) -> list[str]:
        return split_text(text, self.part_limit)

    def send_part(
        self, config: Mapping[str, Any], *, chat_id: str, text: str, meta: Mapping[str, Any]
    ) -> None:
        """Send one part; raise SendError on failure."""
        raise NotImplementedError

    # --- lifecycle hooks -----------------------------------------------------------------------
    # Config keys whose change on an enabled channel runs `on_enable` again (e.g. the webhook's).
    enable_keys: ClassVar[tuple[str, ...]] = ()
    # The platform calls the hooks make, named in `last_error` ("setWebhook failed: …").
    enable_call: ClassVar[str] = "enable"
    disable_call: ClassVar[str] = "disable"

    def hooks_active(self) -> bool:
        """Whether `on_enable` / `on_disable` have work to do now. The services schedule them
        (a read after commit, a task after a delete) only when they do, so a platform that
        overrides the hooks overrides this too."""
        return False

    def on_enable(self, config: Mapping[str, Any], *, inbound_url: str) -> None:
        """After a channel is committed enabled (created or re-enabled), or an `enable_keys` value
        of an enabled channel changed: set the platform up for it (e.g. point its webhook at
        `inbound_url`). Raise SendError: its reason goes to the channel's `last_error`, the
        channel stays enabled. Default: nothing."""

    def on_disable(self, config: Mapping[str, Any]) -> None:
        """After the last enabled channel of a credential is committed disabled or deleted: undo
        `on_enable`. Raise SendError as there. Default: nothing."""

    # --- discovery ------------------------------------------------------------------------------
    def discover(self, *, bot_token: str) -> Discovery:
        raise NotImplementedError
