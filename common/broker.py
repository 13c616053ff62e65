"""Asking the Celery broker how it is: reachable, how fast, and how many messages wait per queue.

Only kombu's public API: a connection from the current Celery app (the project's, created when
Django loads its settings) and passive queue declarations (which answer the queue's message count
without creating anything). `common` names no project package, so it asks Celery for the app.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from celery import current_app
from kombu.exceptions import ChannelError

logger = logging.getLogger(__name__)
CONNECT_TIMEOUT_SECONDS = 2.0
NOT_FOUND = "404"


@dataclass(frozen=True)
class BrokerProbe:
    ok: bool
    # Connecting plus reading the queue lengths: one round trip per queue after the connection.
    latency_seconds: float | None = None
    depths: dict[str, int] = field(default_factory=dict)


def _depth(channel, queue: str) -> int:
    try:
        return int(channel.queue_declare(queue=queue, passive=True).message_count)
    except ChannelError as exc:
        # Redis drops an empty list, and kombu answers "no such queue" for it.
        if str(getattr(exc, "reply_code", "")) == NOT_FOUND:  # kombu's virtual transports: "404"
            return 0
        raise


def broker_probe(*, queues: Sequence[str]) -> BrokerProbe:
    """Connect once (2 s at most), then read each queue's length; never raises."""
    started = time.monotonic()
    try:
        with current_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=CONNECT_TIMEOUT_SECONDS)
            depths = {queue: _depth(conn.default_channel, queue) for queue in queues}
    except Exception:
        logger.warning("broker unreachable", exc_info=True)
        return BrokerProbe(ok=False)
    return BrokerProbe(ok=True, latency_seconds=time.monotonic() - started, depths=depths)


def celery_queue_names() -> list[str]:
    """Every queue the workers consume (the declared ones, the default first)."""
    conf = current_app.conf
    names = [conf.task_default_queue]
    names += [queue.name for queue in conf.task_queues or () if queue.name not in names]
    return names
