"""The echo agent (`manage.py run_echo_agent`) speaks A2A 1.0 and 0.3 on one endpoint and serves a
valid 1.0 agent card; the official SDK's client reads the card and talks to it in both versions."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from a2a.client import A2ACardResolver, ClientConfig, ClientFactory
from a2a.client.card_resolver import parse_agent_card
from a2a.helpers.proto_helpers import new_text_message
from a2a.types.a2a_pb2 import AgentCard, Role, SendMessageRequest
from a2a.utils.proto_utils import validate_proto_required_fields

from tests.support.fake_http import free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def echo_process() -> Iterator[str]:
    """The real command, as operators run it."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "manage.py", "run_echo_agent", "--port", str(port), "--reply", "pong"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(150):
            try:
                with urllib.request.urlopen(url + ".well-known/agent-card.json", timeout=1):
                    break
            except OSError:
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(10)


def _only(card: AgentCard, version: str) -> AgentCard:
    """The card as an agent speaking only `version` would serve it."""
    chosen = AgentCard()
    chosen.CopyFrom(card)
    kept = [i for i in card.supported_interfaces if i.protocol_version == version]
    del chosen.supported_interfaces[:]
    chosen.supported_interfaces.extend(kept)
    return chosen


async def _sdk_conversation(
    url: str, version: str | None, card_path: str | None = None
) -> tuple[AgentCard, str]:
    async with httpx.AsyncClient() as http:
        card = await A2ACardResolver(http, url).get_agent_card(relative_card_path=card_path)
    client = ClientFactory(ClientConfig(streaming=False)).create(_only(card, version) if version else card)
    texts = []
    try:
        request = SendMessageRequest(message=new_text_message("hello from the SDK", role=Role.ROLE_USER))
        async for event in client.send_message(request):
            texts.extend(part.text for part in event.message.parts)
    finally:
        await client.close()
    return card, "".join(texts)


@pytest.mark.parametrize("version", ["1.0", "0.3"])
def test_the_sdk_client_talks_to_run_echo_agent(echo_process, version):
    card, text = asyncio.run(_sdk_conversation(echo_process, version))
    assert text == "pong"
    assert {(i.protocol_binding, i.protocol_version, i.url) for i in card.supported_interfaces} == {
        ("JSONRPC", "1.0", echo_process),
        ("JSONRPC", "0.3", echo_process),
    }


def test_run_echo_agent_answers_a_plain_0_3_client(echo_process):
    """What a 0.3-only client does: the legacy card path, then `message/send` with no header."""
    with urllib.request.urlopen(echo_process + ".well-known/agent.json", timeout=5) as response:
        assert json.load(response)["name"] == "Echo agent"
    answer = _post(echo_process, _call("message/send", V03_MESSAGE))
    assert answer["result"]["parts"] == [{"kind": "text", "text": "pong"}]


def test_the_sdk_client_reads_the_legacy_card_path_too(echo_process):
    card, text = asyncio.run(_sdk_conversation(echo_process, None, card_path="/.well-known/agent.json"))
    assert text == "pong" and card.name == "Echo agent"


@pytest.mark.parametrize("path", ["/.well-known/agent-card.json", "/.well-known/agent.json"])
def test_the_card_is_a_valid_1_0_card(echo_agent, path):
    with urllib.request.urlopen(echo_agent.url.rstrip("/") + path, timeout=5) as response:
        raw = json.load(response)
    assert raw["supportedInterfaces"][0] == {
        "url": echo_agent.url,
        "protocolBinding": "JSONRPC",
        "protocolVersion": "1.0",
    }
    card = parse_agent_card(dict(raw))
    validate_proto_required_fields(card)  # raises on any REQUIRED field missing
    assert (raw["url"], raw["protocolVersion"]) == (echo_agent.url, "0.3.0")  # 0.3 clients read it too


@pytest.mark.parametrize("version", ["1.0", "0.3"])
def test_the_sdk_client_in_each_version_is_seen_as_that_version(echo_agent, version):
    _card, text = asyncio.run(_sdk_conversation(echo_agent.url, version))
    assert text == "hello from the SDK"
    assert echo_agent.versions == [version]


def _post(url: str, body: dict, headers: dict | None = None) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json", **(headers or {})}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)


def _call(method: str, message: dict) -> dict:
    return {"jsonrpc": "2.0", "id": "1", "method": method, "params": {"message": message}}


V1_MESSAGE = {"role": "ROLE_USER", "messageId": "m1", "contextId": "ctx", "parts": [{"text": "hi"}]}
V03_MESSAGE = {"role": "user", "messageId": "m2", "parts": [{"kind": "text", "text": "hi"}]}


def test_wire_1_0(echo_agent):
    answer = _post(echo_agent.url, _call("SendMessage", V1_MESSAGE), {"A2A-Version": "1.0"})
    message = answer["result"]["message"]
    assert (message["role"], message["parts"], message["contextId"]) == (
        "ROLE_AGENT",
        [{"text": "hi"}],
        "ctx",
    )
    assert "kind" not in answer["result"]


def test_wire_0_3(echo_agent):
    answer = _post(echo_agent.url, _call("message/send", V03_MESSAGE))
    result = answer["result"]
    assert (result["kind"], result["role"], result["parts"]) == (
        "message",
        "agent",
        [{"kind": "text", "text": "hi"}],
    )
    assert result["contextId"]


@pytest.mark.parametrize(
    "method, headers, version",
    [
        ("SendMessage", {}, "1.0"),  # the method alone says 1.0
        ("SendMessage", {"A2A-Version": "0.3"}, "1.0"),
        ("message/send", {"A2A-Version": "0.3"}, "0.3"),
        ("message/send", {}, "0.3"),
    ],
)
def test_which_version_answers(echo_agent, method, headers, version):
    answer = _post(echo_agent.url, _call(method, V1_MESSAGE if version == "1.0" else V03_MESSAGE), headers)
    assert ("message" in answer["result"]) is (version == "1.0")
    assert echo_agent.versions == [version]


@pytest.mark.parametrize(
    "method, headers",
    [("message/send", {"A2A-Version": "1.0"}), ("tasks/get", {}), ("GetTask", {"A2A-Version": "1.0"})],
)
def test_other_methods_are_not_found(echo_agent, method, headers):
    answer = _post(echo_agent.url, _call(method, V03_MESSAGE), headers)
    assert answer["error"]["code"] == -32601
    assert echo_agent.received == []
