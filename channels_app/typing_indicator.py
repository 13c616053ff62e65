"""Telegram "typing…" while the agent thinks.

Telegram shows a chat action for about five seconds, so it is sent again every
`CHANNEL_TYPING_INTERVAL_SECONDS` (4 s) until the reply is ready or the delivery fails, and never
past the A2A timeout. The repeats come from a small daemon thread of the delivery that is
already waiting on the agent: no extra worker process, no database connection (the thread makes
HTTP calls only). A failed chat action is not retried and never fails the delivery; a permanent
refusal stops the repeats.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from django.conf import settings

from channels_app.adapters import ADAPTERS
from channels_app.adapters.base import SendError
from channels_app.models import Channel

STOP_JOIN_SECONDS = 2.0


class TypingIndicator:
    """Calls `send` at once, then every `interval` seconds until `stop()` or `deadline`."""

    def __init__(self, *, send: Callable[[], None], interval: float, timeout: float) -> None:
        self._send = send
        self._interval = interval
        self._deadline = time.monotonic() + timeout
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="telegram-typing", daemon=True)
        self.sent = 0

    def start(self) -> TypingIndicator:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stopped.is_set() and time.monotonic() < self._deadline:
            try:
                self._send()
                self.sent += 1
            except SendError as exc:
                if not exc.transient:
                    return
            wait = min(self._interval, max(self._deadline - time.monotonic(), 0.0))
            if self._stopped.wait(wait):
                return

    def stop(self) -> None:
        """No action starts after this returns (one in flight is waited for, briefly)."""
        self._stopped.set()
        self._thread.join(STOP_JOIN_SECONDS)

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()


@contextlib.contextmanager
def typing_while(*, channel: Channel, chat_id: str) -> Iterator[TypingIndicator | None]:
    """Show "typing…" in `chat_id` for the duration of the block (Telegram only)."""
    if channel.platform != "telegram" or not chat_id:
        yield None
        return
    adapter: Any = ADAPTERS["telegram"]
    config = channel.config
    indicator = TypingIndicator(
        send=lambda: adapter.send_chat_action(config, chat_id=chat_id, action="typing"),
        interval=settings.CHANNEL_TYPING_INTERVAL_SECONDS,
        timeout=float(settings.A2A_TIMEOUT_SECONDS),
    ).start()
    try:
        yield indicator
    finally:
        indicator.stop()
