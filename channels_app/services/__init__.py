"""Channel writes, split by concern: `config` (create/update/delete, validation, secrets),
`lifecycle` (the adapters' enable/disable hooks after commit), `outbound` (sends and their
retries), `inbound` (webhooks, then agent and reply), `discovery`. The names callers use are
re-exported here, so `from channels_app import services; services.channel_create(...)` stays."""

from channels_app.services.base import (
    ApplicationTaken,
    InvalidConfig,
    InvalidSignature,
    InvalidToken,
    NotSupported,
    PlatformError,
    inbound_url,
    message_claim,
    retry_delay,
)
from channels_app.services.config import (
    MASK,
    MAX_ALLOWLIST_ENTRIES,
    channel_bulk_create,
    channel_create,
    channel_delete,
    channel_prepare,
    channel_rekey_all,
    channel_update,
    mask_secret,
    masked_config,
)
from channels_app.services.discovery import channel_discover
from channels_app.services.inbound import WebhookAnswer, message_process_inbound, webhook_receive
from channels_app.services.lifecycle import (
    CleanupNotDone,
    channel_cleanup_create,
    channel_cleanup_run,
    channel_disable_hook,
    channel_enable_hook,
    disable_after_delete,
)
from channels_app.services.outbound import (
    TEST_MESSAGE,
    channel_reply,
    channel_send,
    channel_send_service,
    channel_test,
    message_send_attempt,
)

__all__ = [
    "MASK",
    "MAX_ALLOWLIST_ENTRIES",
    "TEST_MESSAGE",
    "ApplicationTaken",
    "CleanupNotDone",
    "InvalidConfig",
    "InvalidSignature",
    "InvalidToken",
    "NotSupported",
    "PlatformError",
    "WebhookAnswer",
    "channel_bulk_create",
    "channel_cleanup_create",
    "channel_cleanup_run",
    "channel_create",
    "channel_delete",
    "channel_disable_hook",
    "channel_discover",
    "channel_enable_hook",
    "channel_prepare",
    "channel_rekey_all",
    "channel_reply",
    "channel_send",
    "channel_send_service",
    "channel_test",
    "channel_update",
    "disable_after_delete",
    "inbound_url",
    "mask_secret",
    "masked_config",
    "message_claim",
    "message_process_inbound",
    "message_send_attempt",
    "retry_delay",
    "webhook_receive",
]
