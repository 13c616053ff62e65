"""The A2A client against real HTTP servers on 127.0.0.1 (SPEC §3)."""

from __future__ import annotations

import json
import socket
import threading

import pytest

from tests.support.fake_http import FakeResponse, free_port, json_response
from workspaces.a2a import A2AError, a2a_send
from workspaces.delivery import deliver_prompt
from workspaces.models import AgentDelivery
from workspaces.selectors import workspace_busy_state


@pytest.fixture(params=["1.0", "0.3"])
def protocol(request) -> str:
    """Transport rules are the same in both A2A versions."""
    return request.param


def _rpc_result(result):
    return lambda request: FakeResponse(
        200,
        json.dumps({"jsonrpc": "2.0", "id": request.json()["id"], "result": result}).encode(),
        {"Content-Type": "application/json"},
    )


def test_message_reply_and_request_shape(fake_http):
    fake_http.route(
        "POST",
        "/",
        _rpc_result(
            {
                "kind": "message",
                "role": "agent",
                "messageId": "m",
                "parts": [
                    {"kind": "text", "text": "hello"},
                    {"kind": "data", "data": {}},
                    {"kind": "text", "text": "world"},
                ],
            }
        ),
    )
    reply = a2a_send(
        url=fake_http.url + "/",
        text="ping",
        protocol="0.3",
        message_id="msg-1",
        metadata={"source": "test"},
        request_id="req-1",
    )
    assert reply.text == "hello\nworld"
    assert reply.kind == "message"
    sent = fake_http.requests[0]
    assert sent.headers["X-Request-Id"] == "req-1"
    assert sent.headers["A2A-Version"] == "0.3"
    body = sent.json()
    assert body["jsonrpc"] == "2.0" and body["method"] == "message/send"
    assert body["params"]["message"] == {
        "role": "user",
        "messageId": "msg-1",
        "parts": [{"kind": "text", "text": "ping"}],
        "metadata": {"source": "test"},
    }


def test_task_reply_uses_artifacts(fake_http):
    fake_http.route(
        "POST",
        "/",
        _rpc_result(
            {
                "kind": "task",
                "id": "t1",
                "status": {"state": "completed"},
                "artifacts": [
                    {"parts": [{"kind": "text", "text": "part one"}]},
                    {"parts": [{"kind": "text", "text": "part two"}]},
                ],
            }
        ),
    )
    reply = a2a_send(url=fake_http.url, text="x", protocol="0.3")
    assert reply.kind == "task"
    assert reply.text == "part one\npart two"
    assert reply.task_state == "completed"


def test_failed_task_is_a_failure(fake_http):
    fake_http.route("POST", "/", _rpc_result({"kind": "task", "status": {"state": "failed"}}))
    with pytest.raises(A2AError, match="agent task ended as failed"):
        a2a_send(url=fake_http.url, text="x", protocol="0.3")


def test_jsonrpc_error_reason_has_no_upstream_text(fake_http, protocol):
    fake_http.route(
        "POST",
        "/",
        json_response(
            {"jsonrpc": "2.0", "id": "1", "error": {"code": -32000, "message": "db password is hunter2"}}
        ),
    )
    with pytest.raises(A2AError) as caught:
        a2a_send(url=fake_http.url, text="x", protocol=protocol)
    assert caught.value.reason == "agent returned JSON-RPC error -32000"
    assert "hunter2" not in caught.value.reason


@pytest.mark.parametrize(
    "status, transient", [(500, True), (503, True), (429, True), (404, False), (401, False)]
)
def test_non_2xx(fake_http, status, transient, protocol):
    fake_http.route("POST", "/", lambda r: FakeResponse(status, b"secret upstream text"))
    with pytest.raises(A2AError) as caught:
        a2a_send(url=fake_http.url, text="x", protocol=protocol)
    assert caught.value.reason == f"agent returned HTTP {status}"
    assert caught.value.transient is transient


def test_not_json(fake_http, protocol):
    fake_http.route("POST", "/", lambda r: FakeResponse(200, b"<html>"))
    with pytest.raises(A2AError, match="not valid JSON"):
        a2a_send(url=fake_http.url, text="x", protocol=protocol)


def test_timeout(fake_http, protocol):
    fake_http.route("POST", "/", lambda r: FakeResponse(200, b"{}", delay=3))
    with pytest.raises(A2AError) as caught:
        a2a_send(url=fake_http.url, text="x", protocol=protocol, timeout=0.5)
    assert caught.value.reason == "agent did not answer within 0.5s"
    assert caught.value.transient


def test_timeout_of_a_dripping_agent(fake_http, protocol):
    drip = [b"{"] + [b" "] * 20
    fake_http.route("POST", "/", lambda r: FakeResponse(200, drip, chunk_interval=0.2))
    with pytest.raises(A2AError, match="did not answer within 1s"):
        a2a_send(url=fake_http.url, text="x", protocol=protocol, timeout=1)


def test_refused_connection(protocol):
    with pytest.raises(A2AError) as caught:
        a2a_send(url=f"http://127.0.0.1:{free_port()}/", text="x", protocol=protocol)
    assert caught.value.reason == "agent unreachable: connection refused"
    assert caught.value.transient


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data",
        "http://[fe80::1]/",
        "http://169.254.10.10:8080/",
        "http://[::ffff:169.254.169.254]/",
    ],
)
def test_link_local_and_metadata_refused_before_connecting(url, monkeypatch, protocol):
    attempts = []
    original = socket.socket.connect
    monkeypatch.setattr(socket.socket, "connect", lambda s, a: attempts.append(a) or original(s, a))
    with pytest.raises(A2AError) as caught:
        a2a_send(url=url, text="x", protocol=protocol)
    assert "refused" in caught.value.reason
    assert attempts == []


def test_private_networks_can_be_refused(settings, fake_http, protocol):
    fake_http.route("POST", "/", _rpc_result({"parts": [{"kind": "text", "text": "ok"}]}))
    assert a2a_send(url=fake_http.url, text="x", protocol=protocol).text == "ok"
    settings.A2A_ALLOW_PRIVATE_NETWORKS = False
    with pytest.raises(A2AError, match="private and loopback addresses are not allowed"):
        a2a_send(url=fake_http.url, text="x", protocol=protocol)
    with pytest.raises(A2AError, match="private and loopback"):
        a2a_send(url=fake_http.url.replace("127.0.0.1", "localhost"), text="x", protocol=protocol)
    assert len(fake_http.requests) == 1


def test_redirects_are_not_followed(fake_http, protocol):
    fake_http.route("POST", "/", lambda r: FakeResponse(307, b"", {"Location": "http://169.254.169.254/"}))
    with pytest.raises(A2AError, match="HTTP 307"):
        a2a_send(url=fake_http.url, text="x", protocol=protocol)


def test_too_large_reply(settings, fake_http, protocol):
    settings.A2A_MAX_RESPONSE_BYTES = 1024
    fake_http.route("POST", "/", lambda r: FakeResponse(200, b" " * 2048))
    with pytest.raises(A2AError, match="too large"):
        a2a_send(url=fake_http.url, text="x", protocol=protocol)


def test_echo_agent_round_trip(echo_agent, protocol):
    reply = a2a_send(url=echo_agent.url, text="are you there?", protocol=protocol, message_id="m-42")
    assert reply.text == "are you there?"
    assert reply.protocol == protocol
    assert echo_agent.received[0]["messageId"] == "m-42"
    assert echo_agent.versions == [protocol]


@pytest.mark.django_db(transaction=True)
def test_delivery_counts_as_in_flight_while_it_runs(workspace, fake_http):
    release = threading.Event()
    seen = []

    def slow(request):
        seen.append(workspace_busy_state(workspace=workspace))
        release.wait(5)
        return _rpc_result({"parts": [{"kind": "text", "text": "done"}]})(request)

    fake_http.route("POST", "/", slow)
    workspace.url = fake_http.url
    workspace.save()
    result = {}
    thread = threading.Thread(
        target=lambda: result.update(
            reply=deliver_prompt(workspace=workspace, text="x", message_id="m", source="test")
        )
    )
    thread.start()
    for _ in range(50):
        if seen:
            break
        threading.Event().wait(0.05)
    release.set()
    thread.join(5)
    assert seen and seen[0].in_flight == 1 and seen[0].busy
    assert seen[0].reason == "workspace busy: 1/1 tasks active"
    assert result["reply"].text == "done"
    assert AgentDelivery.objects.count() == 0
    assert not workspace_busy_state(workspace=workspace).busy


@pytest.mark.django_db
def test_workspace_without_url(workspace):
    workspace.url = ""
    with pytest.raises(A2AError, match="workspace has no agent url"):
        deliver_prompt(workspace=workspace, text="x", message_id="m", source="test")


@pytest.mark.django_db
def test_busy_uses_fresh_heartbeat_only(workspace):
    from datetime import timedelta

    from django.utils import timezone

    workspace.active_tasks = 2
    workspace.max_concurrent_tasks = 2
    workspace.last_heartbeat_at = timezone.now()
    assert workspace_busy_state(workspace=workspace).busy
    assert workspace_busy_state(workspace=workspace).reason == "workspace busy: 2/2 tasks active"
    workspace.last_heartbeat_at = timezone.now() - timedelta(minutes=6)
    assert not workspace_busy_state(workspace=workspace).busy


def test_reply_text_is_storable(fake_http, protocol):
    raw = '{"jsonrpc":"2.0","id":"1","result":{"parts":[{"kind":"text","text":"a\\u0000b \\ud83d c"}]}}'
    fake_http.route(
        "POST", "/", lambda r: FakeResponse(200, raw.encode(), {"Content-Type": "application/json"})
    )
    reply = a2a_send(url=fake_http.url, text="x", protocol=protocol)
    assert reply.text == "ab ? c"
    reply.text.encode("utf-8")  # no lone surrogate left
