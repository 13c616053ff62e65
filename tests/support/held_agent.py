"""A fake A2A agent that holds every request until released, counting what is in flight.

Tests of concurrency assert what the agent sees at once, not wall-clock time:

    agent = HeldAgent().start()
    ... fire 40 runs ...
    wait_for(lambda: agent.in_flight() == 40)
    agent.release()

Each workspace gets its own path (`agent.url_for("ws-3")`), so counts are also kept per path;
`hold` chooses which paths are held (the others answer at once).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable

from tests.support.a2a_fakes import METHOD_VERSIONS, message_result, rpc
from tests.support.fake_http import FakeHttpServer, FakeResponse, RecordedRequest

HOLD_LIMIT_SECONDS = 120.0


class HeldAgent:
    def __init__(self, *, hold: Callable[[str], bool] = lambda path: True, reply: str = "done") -> None:
        self.server = FakeHttpServer()
        self.server.route_prefix("POST", "/agents/", self._handle)
        self.hold = hold
        self.reply = reply
        self.lock = threading.Lock()
        self.released = threading.Event()
        self.current: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()
        self.peak_total = 0
        self.received: list[tuple[str, str]] = []  # (path, messageId), in arrival order

    def url_for(self, name: str) -> str:
        return f"{self.server.url}/agents/{name}"

    def start(self) -> HeldAgent:
        self.server.start()
        return self

    def stop(self) -> None:
        self.released.set()
        self.server.stop()

    def __enter__(self) -> HeldAgent:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def release(self) -> None:
        """Answer every held request, and every later one at once."""
        self.released.set()

    def in_flight(self, path: str | None = None) -> int:
        with self.lock:
            return self.current[path] if path else sum(self.current.values())

    def message_ids(self) -> list[str]:
        with self.lock:
            return [message_id for _, message_id in self.received]

    def _handle(self, request: RecordedRequest) -> FakeResponse:
        payload = request.json()
        version = METHOD_VERSIONS.get(payload.get("method"), "1.0")
        message = (payload.get("params") or {}).get("message") or {}
        path = request.path
        with self.lock:
            self.received.append((path, str(message.get("messageId", ""))))
            self.current[path] += 1
            self.peak[path] = max(self.peak[path], self.current[path])
            self.peak_total = max(self.peak_total, sum(self.current.values()))
        try:
            if self.hold(path):
                self.released.wait(HOLD_LIMIT_SECONDS)
        finally:
            with self.lock:
                self.current[path] -= 1
        return rpc(request, result=message_result(version, self.reply))
