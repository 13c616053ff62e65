"""The command parser of every platform and the bounds of the typing indicator (no network)."""

from __future__ import annotations

import threading

import pytest

from channels_app.adapters.base import SendError
from channels_app.commands import command_of
from channels_app.models import ChannelMessage
from channels_app.typing_indicator import TypingIndicator


@pytest.mark.parametrize(
    ("platform", "text", "meta", "expected"),
    [
        ("telegram", "/start", {}, "start"),
        ("telegram", "/START@MyBot", {}, "start"),
        ("telegram", "/help@my_bot", {}, "help"),
        ("telegram", " /reset@mybot ", {}, "reset"),
        ("telegram", "/reset now please", {}, "reset"),
        ("telegram", "/resetx", {}, None),
        ("telegram", "reset", {}, None),
        ("telegram", "/start@", {}, None),
        ("slack", "reset", {}, "reset"),
        ("slack", "<@U0BOT> reset", {}, "reset"),
        ("slack", "/reset", {"command": "/reset"}, "reset"),
        ("slack", "reset", {"command": "/agent"}, "reset"),
        ("slack", "hello", {"command": "/agent"}, None),
        ("slack", "reset the server", {}, None),
        ("discord", "reset", {}, "reset"),
        ("discord", "/reset", {}, "reset"),
        ("discord", "start", {}, None),
        ("lark", "@_user_1 reset", {}, "reset"),
        ("lark", "Reset", {}, "reset"),
        ("lark", "/help", {}, None),
    ],
)
def test_command_of(platform, text, meta, expected):
    assert command_of(platform=platform, message=ChannelMessage(text=text, meta=meta)) == expected


def test_typing_sends_nothing_past_its_deadline():
    calls: list[int] = []
    indicator = TypingIndicator(send=lambda: calls.append(1), interval=0.5, timeout=0.0).start()
    indicator.stop()
    assert calls == [] and not indicator.running


def test_typing_stops_on_a_permanent_refusal_and_continues_on_a_transient_one():
    refused = threading.Event()

    def permanent() -> None:
        refused.set()
        raise SendError("telegram: credentials refused (HTTP 401)", transient=False)

    indicator = TypingIndicator(send=permanent, interval=0.5, timeout=60.0).start()
    assert refused.wait(5)
    indicator.join(5)  # ends by itself, without stop()
    assert not indicator.running and indicator.sent == 0

    transient_calls = threading.Semaphore(0)

    def transient() -> None:
        transient_calls.release()
        raise SendError("telegram: server error (HTTP 502)", transient=True)

    indicator = TypingIndicator(send=transient, interval=0.5, timeout=60.0).start()
    assert transient_calls.acquire(timeout=5) and transient_calls.acquire(timeout=5)  # tried again
    indicator.stop()
    assert not indicator.running
