"""A2A 1.0 and 0.3 on the wire, reply reading in both, and how `auto` chooses (issue 13)."""

from __future__ import annotations

import json
import socket

import pytest
from a2a.types.a2a_pb2 import SendMessageRequest
from django.core.cache import cache
from google.protobuf.json_format import ParseDict

from tests.support.a2a_fakes import a2a_agent, rpc, sent_versions
from tests.support.factories import make_workspace
from tests.support.fake_http import FakeHttpServer, FakeResponse, json_response
from workspaces import a2a_protocol
from workspaces.a2a import A2AError, a2a_send, extract_reply, rpc_error_reason
from workspaces.a2a_protocol import card_protocol
from workspaces.delivery import deliver_prompt

CARD_1 = ("GET", "/.well-known/agent-card.json", "")
CARD_0 = ("GET", "/.well-known/agent.json", "")
SEND_1 = ("POST", "/", "SendMessage")
SEND_0 = ("POST", "/", "message/send")


@pytest.fixture(autouse=True)
def _no_remembered_versions():
    cache.clear()
    yield
    cache.clear()


# --- the wire -----------------------------------------------------------------------------------


def test_1_0_request_is_what_the_official_sdk_parses(fake_http):
    fake_http.route(
        "POST",
        "/",
        lambda r: rpc(
            r,
            result={
                "message": {
                    "messageId": "a",
                    "contextId": "ctx-9",
                    "role": "ROLE_AGENT",
                    "parts": [
                        {"text": "hello"},
                        {"data": {"x": 1}},
                        {"url": "https://x.test/f"},
                        {"text": "world"},
                    ],
                }
            },
        ),
    )
    reply = a2a_send(
        url=fake_http.url + "/",
        text="ping",
        protocol="1.0",
        message_id="msg-1",
        request_id="req-1",
        metadata={"source": "test"},
        context_id="ctx-1",
    )
    assert (reply.text, reply.kind, reply.protocol, reply.context_id) == (
        "hello\nworld",
        "message",
        "1.0",
        "ctx-9",
    )
    sent = fake_http.requests[0]
    assert sent.headers["A2A-Version"] == "1.0"
    assert sent.headers["X-Request-Id"] == "req-1"
    body = sent.json()
    assert (body["jsonrpc"], body["id"], body["method"]) == ("2.0", "req-1", "SendMessage")
    assert body["params"] == {
        "message": {
            "role": "ROLE_USER",
            "messageId": "msg-1",
            "parts": [{"text": "ping"}],
            "contextId": "ctx-1",
            "metadata": {"source": "test"},
        }
    }
    # The official SDK's own parser, strict about unknown fields and enum names.
    parsed = ParseDict(body["params"], SendMessageRequest(), ignore_unknown_fields=False)
    assert (parsed.message.role, parsed.message.parts[0].text) == (1, "ping")


def test_0_3_request_carries_the_context_id(fake_http):
    fake_http.route("POST", "/", a2a_agent(versions=("0.3",), reply="fine"))
    reply = a2a_send(url=fake_http.url, text="ping", protocol="0.3", message_id="m", context_id="ctx-1")
    assert (reply.text, reply.protocol, reply.context_id) == ("fine", "0.3", "c")
    assert fake_http.requests[0].json()["params"]["message"] == {
        "role": "user",
        "messageId": "m",
        "parts": [{"kind": "text", "text": "ping"}],
        "contextId": "ctx-1",
    }


def test_unknown_protocol_is_a_programming_error():
    with pytest.raises(ValueError):
        a2a_send(url="http://127.0.0.1:9/", text="x", protocol="2.0")


# --- replies --------------------------------------------------------------------------------------

STATES = [
    # (0.3 spelling, 1.0 spelling, failure reason or None)
    ("completed", "TASK_STATE_COMPLETED", None),
    ("input-required", "TASK_STATE_INPUT_REQUIRED", None),
    ("failed", "TASK_STATE_FAILED", "agent task ended as failed"),
    ("canceled", "TASK_STATE_CANCELED", "agent task ended as canceled"),
    ("rejected", "TASK_STATE_REJECTED", "agent task ended as rejected"),
    ("auth-required", "TASK_STATE_AUTH_REQUIRED", "agent task ended as auth-required"),
    ("submitted", "TASK_STATE_SUBMITTED", "agent task did not finish (still submitted)"),
    ("working", "TASK_STATE_WORKING", "agent task did not finish (still working)"),
    ("unknown", "TASK_STATE_UNSPECIFIED", "agent task ended in an unknown state"),
]


def _task(version: str, state: str, *, status_text: str = "the agent says", artifacts: bool = False) -> dict:
    if version == "1.0":
        part = {"text": status_text}
        task = {
            "id": "t-1",
            "contextId": "ctx-2",
            "status": {"state": state, "message": {"role": "ROLE_AGENT", "parts": [part]}},
        }
        if artifacts:
            task["artifacts"] = [
                {"artifactId": "a", "parts": [{"text": "one"}]},
                {"artifactId": "b", "parts": [{"text": "two"}]},
            ]
        return {"task": task}
    part = {"kind": "text", "text": status_text}
    task = {
        "kind": "task",
        "id": "t-1",
        "contextId": "ctx-2",
        "status": {"state": state, "message": {"role": "agent", "parts": [part]}},
    }
    if artifacts:
        task["artifacts"] = [
            {"parts": [{"kind": "text", "text": "one"}]},
            {"parts": [{"kind": "text", "text": "two"}]},
        ]
    return task


@pytest.mark.parametrize("version", ["1.0", "0.3"])
@pytest.mark.parametrize("old, new, reason", STATES)
def test_every_task_state_of_both_versions(version, old, new, reason):
    result = _task(version, new if version == "1.0" else old, status_text="secret upstream words")
    if reason is None:
        reply = extract_reply(result, protocol=version)
        assert (reply.kind, reply.task_state, reply.text) == ("task", old, "secret upstream words")
        assert (reply.task_id, reply.context_id, reply.protocol) == ("t-1", "ctx-2", version)
        return
    with pytest.raises(A2AError) as caught:
        extract_reply(result, protocol=version)
    assert caught.value.reason == reason
    assert caught.value.answered and caught.value.protocol == version
    assert "secret" not in caught.value.reason


@pytest.mark.parametrize("version", ["1.0", "0.3"])
def test_artifacts_come_before_the_status_message(version):
    reply = extract_reply(
        _task(version, "TASK_STATE_COMPLETED" if version == "1.0" else "completed", artifacts=True)
    )
    assert reply.text == "one\ntwo"


@pytest.mark.parametrize("version", ["1.0", "0.3"])
def test_input_required_without_a_question_is_a_failure(version):
    result = _task(
        version, "TASK_STATE_INPUT_REQUIRED" if version == "1.0" else "input-required", status_text=" "
    )
    with pytest.raises(A2AError, match=r"^agent task ended as input-required with no question$"):
        extract_reply(result)


def test_last_agent_message_of_the_history_when_nothing_else():
    result = {
        "task": {
            "id": "t",
            "status": {"state": "TASK_STATE_COMPLETED"},
            "history": [
                {"role": "ROLE_USER", "parts": [{"text": "question"}]},
                {"role": "ROLE_AGENT", "parts": [{"text": "early"}]},
                {"role": "ROLE_AGENT", "parts": [{"text": "answer"}]},
            ],
        }
    }
    assert extract_reply(result).text == "answer"


@pytest.mark.parametrize("state", [42, -1, "TASK_STATE_EXPLODED", ["completed"], True])
def test_an_unrecognised_state_is_a_failure(state):
    with pytest.raises(A2AError, match=r"^agent task ended in an unknown state$"):
        extract_reply({"task": {"status": {"state": state}}})


@pytest.mark.parametrize("number, name", [(3, "completed"), (6, "input-required")])
def test_numeric_1_0_states_are_read(number, name):
    reply = extract_reply({"task": {"status": {"state": number, "message": {"parts": [{"text": "q"}]}}}})
    assert reply.task_state == name


# --- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "code, label",
    [
        (-32700, "parse error"),
        (-32600, "invalid request"),
        (-32601, "method not found"),
        (-32602, "invalid params"),
        (-32603, "internal error"),
        (-32001, "task not found"),
        (-32002, "task not cancelable"),
        (-32003, "push notifications not supported"),
        (-32004, "unsupported operation"),
        (-32005, "content type not supported"),
        (-32006, "invalid agent response"),
        (-32007, "extended agent card not configured"),
        (-32008, "extension support required"),
        (-32009, "version not supported"),
    ],
)
def test_both_error_vocabularies(code, label):
    reason, got = rpc_error_reason({"code": code, "message": "upstream secret"})
    assert (reason, got) == (f"agent returned JSON-RPC error {code} ({label})", code)


def test_a_1_0_error_info_names_an_unknown_code():
    error = {
        "code": -31999,
        "message": "upstream secret",
        "data": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "TASK_NOT_FOUND"}],
    }
    assert rpc_error_reason(error) == ("agent returned JSON-RPC error -31999 (task not found)", -31999)
    error["data"] = [{"reason": "SOMETHING upstream secret"}]
    assert rpc_error_reason(error) == ("agent returned JSON-RPC error -31999", -31999)


@pytest.mark.parametrize("error", ["boom", {"code": "x"}, {"code": True}, {}])
def test_an_error_without_a_code(error):
    assert rpc_error_reason(error) == ("agent returned a JSON-RPC error", None)


# --- the agent card -------------------------------------------------------------------------------

URL = "http://127.0.0.1:8001/"


def _iface(version, binding="JSONRPC", url=URL):
    return {"url": url, "protocolBinding": binding, "protocolVersion": version}


@pytest.mark.parametrize(
    "card, protocol",
    [
        ({"supportedInterfaces": [_iface("1.0"), _iface("0.3")]}, "1.0"),
        ({"supportedInterfaces": [_iface("0.3"), _iface("1.0.0")]}, "1.0"),
        ({"supportedInterfaces": [_iface("0.3.0")]}, "0.3"),
        ({"supportedInterfaces": [_iface("1.0", binding="GRPC"), _iface("0.3")]}, "0.3"),
        ({"supportedInterfaces": [_iface("1.0", binding="HTTP+JSON")]}, None),
        ({"supportedInterfaces": [_iface("2.0")]}, None),
        ({"supportedInterfaces": [_iface("0.1")]}, None),
        ({"supportedInterfaces": [_iface(None)]}, None),
        # Interfaces at the workspace url win over others; with none there, every one counts.
        ({"supportedInterfaces": [_iface("1.0", url="http://10.0.0.9/"), _iface("0.3")]}, "0.3"),
        ({"supportedInterfaces": [_iface("1.0", url="https://public.example.test/a2a")]}, "1.0"),
        # The 0.3 layout: url + protocolVersion (+ preferredTransport, additionalInterfaces).
        ({"url": URL, "protocolVersion": "0.3.0"}, "0.3"),
        ({"url": URL}, "0.3"),
        ({"url": URL, "protocolVersion": "0.2.5", "preferredTransport": "JSONRPC"}, "0.3"),
        ({"url": URL, "protocolVersion": "0.3.0", "preferredTransport": "GRPC"}, None),
        (
            {
                "url": URL,
                "protocolVersion": "0.3.0",
                "preferredTransport": "GRPC",
                "additionalInterfaces": [{"url": URL, "transport": "JSONRPC"}],
            },
            "0.3",
        ),
        ({"name": "no interfaces"}, None),
        ([], None),
        ({"supportedInterfaces": "nonsense"}, None),
    ],
)
def test_card_protocol(card, protocol):
    assert card_protocol(card, url=URL) == protocol


# --- auto -----------------------------------------------------------------------------------------


def _deliver(workspace, message_id="m-1", **kwargs):
    return deliver_prompt(workspace=workspace, text="hi", message_id=message_id, source="test", **kwargs)


@pytest.mark.django_db
@pytest.mark.parametrize("refusal", [-32601, -32009])
def test_auto_without_a_card_falls_back_to_0_3_once_and_remembers(fake_http, refusal):
    fake_http.route("POST", "/", a2a_agent(versions=("0.3",), reply="old but fine", refusal=refusal))
    workspace = make_workspace("old", url=fake_http.url + "/")
    first = _deliver(workspace, message_id="m-1", context_id="ctx-7")
    assert (first.text, first.protocol, first.context_id) == ("old but fine", "0.3", "c")
    assert sent_versions(fake_http.requests) == [CARD_1, CARD_0, SEND_1, SEND_0]
    attempts = [r.json()["params"]["message"] for r in fake_http.requests if r.method == "POST"]
    # The same message, retried once in 0.3: same messageId and contextId.
    assert [(m["messageId"], m["contextId"]) for m in attempts] == [("m-1", "ctx-7"), ("m-1", "ctx-7")]
    assert fake_http.requests[3].headers["A2A-Version"] == "0.3"

    second = _deliver(workspace, message_id="m-2")
    assert second.protocol == "0.3"
    assert sent_versions(fake_http.requests[4:]) == [SEND_0]  # straight to 0.3: no card, no 1.0


@pytest.mark.django_db
def test_auto_fallback_is_recorded_on_the_schedule_run(fake_http):
    from django.utils import timezone

    from schedules import services
    from schedules.models import ScheduleRun
    from tests.support.worker import run_due_jobs

    fake_http.route("POST", "/", a2a_agent(versions=("0.3",), reply="done"))
    workspace = make_workspace("old", url=fake_http.url)
    schedule = services.schedule_create(workspace=workspace, expression="0 9 * * *", prompt="p")
    run = ScheduleRun.objects.create(schedule=schedule, scheduled_for=timezone.now().replace(microsecond=0))
    run_due_jobs()  # the relay publishes the run, the task delivers it
    run.refresh_from_db()
    assert (run.status, run.response_excerpt, run.a2a_protocol) == ("success", "done", "0.3")


@pytest.mark.django_db
def test_a_refusal_in_both_versions_fails_with_the_second_reason_and_is_forgotten(fake_http):
    fake_http.route("POST", "/", a2a_agent(versions=()))
    workspace = make_workspace("neither", url=fake_http.url)
    with pytest.raises(A2AError) as caught:
        _deliver(workspace)
    assert caught.value.reason == "agent returned JSON-RPC error -32601 (method not found)"
    assert caught.value.protocol == "0.3"
    assert a2a_protocol.protocol_remembered(workspace=workspace) is None
    assert sent_versions(fake_http.requests) == [CARD_1, CARD_0, SEND_1, SEND_0]


@pytest.mark.django_db
@pytest.mark.parametrize("code", [-32602, -32603, -32001, -32000])
def test_other_errors_are_not_retried_in_another_version(fake_http, code):
    fake_http.route("POST", "/", lambda r: rpc(r, error={"code": code, "message": "no"}))
    workspace = make_workspace("picky", url=fake_http.url)
    with pytest.raises(A2AError) as caught:
        _deliver(workspace)
    assert caught.value.code == code and caught.value.protocol == "1.0"
    assert sent_versions(fake_http.requests) == [CARD_1, CARD_0, SEND_1]
    # It answered in 1.0, so 1.0 is what it speaks.
    assert a2a_protocol.protocol_remembered(workspace=workspace) == "1.0"


@pytest.mark.django_db
def test_a_transport_failure_proves_nothing(fake_http):
    fake_http.route("POST", "/", lambda r: FakeResponse(503, b"busy"))
    workspace = make_workspace("down", url=fake_http.url)
    with pytest.raises(A2AError, match="HTTP 503"):
        _deliver(workspace)
    assert a2a_protocol.protocol_remembered(workspace=workspace) is None


@pytest.mark.django_db
def test_a_remembered_version_the_agent_now_refuses_is_retried_in_the_other(fake_http):
    fake_http.route("POST", "/", a2a_agent(versions=("1.0",)))
    workspace = make_workspace("upgraded", url=fake_http.url)
    a2a_protocol.protocol_remember(workspace=workspace, protocol="0.3")
    assert _deliver(workspace).protocol == "1.0"
    assert sent_versions(fake_http.requests) == [SEND_0, SEND_1]
    assert a2a_protocol.protocol_remembered(workspace=workspace) == "1.0"


@pytest.mark.django_db
def test_the_card_decides_without_a_refused_attempt(fake_http):
    fake_http.route(
        "GET", "/.well-known/agent-card.json", json_response({"supportedInterfaces": [_iface("0.3")]})
    )
    fake_http.route("POST", "/", a2a_agent(versions=("0.3",)))
    workspace = make_workspace("carded", url=fake_http.url + "/")
    assert _deliver(workspace).protocol == "0.3"
    assert _deliver(workspace).protocol == "0.3"
    assert sent_versions(fake_http.requests) == [CARD_1, SEND_0, SEND_0]


@pytest.mark.django_db
def test_the_legacy_card_path_is_read_when_the_new_one_is_missing(fake_http):
    fake_http.route(
        "GET", "/.well-known/agent.json", json_response({"url": "http://x/", "protocolVersion": "0.3.0"})
    )
    fake_http.route("POST", "/", a2a_agent(versions=("0.3",)))
    workspace = make_workspace("legacy", url=fake_http.url)
    assert _deliver(workspace).protocol == "0.3"
    assert sent_versions(fake_http.requests) == [CARD_1, CARD_0, SEND_0]


@pytest.mark.django_db
def test_the_card_is_read_at_the_origin_of_the_url(fake_http):
    fake_http.route(
        "GET", "/.well-known/agent-card.json", json_response({"supportedInterfaces": [_iface("0.3")]})
    )
    fake_http.route("POST", "/agents/writer/a2a", a2a_agent(versions=("0.3",)))
    workspace = make_workspace("nested", url=fake_http.url + "/agents/writer/a2a")
    assert _deliver(workspace).protocol == "0.3"
    assert [(r.method, r.path) for r in fake_http.requests] == [
        ("GET", "/.well-known/agent-card.json"),
        ("POST", "/agents/writer/a2a"),
    ]


@pytest.mark.django_db
def test_a_new_url_reads_the_card_again(fake_http):
    fake_http.route("POST", "/", a2a_agent(versions=("0.3",)))
    fake_http.route("POST", "/v2", a2a_agent(versions=("0.3",)))
    workspace = make_workspace("moved", url=fake_http.url + "/")
    _deliver(workspace)
    workspace.url = fake_http.url + "/v2"
    _deliver(workspace)
    assert sent_versions(fake_http.requests)[4:6] == [CARD_1, CARD_0]


@pytest.mark.django_db
def test_a_zero_cache_reads_the_card_on_every_delivery(fake_http, settings):
    settings.A2A_PROTOCOL_CACHE_SECONDS = 0
    fake_http.route(
        "GET", "/.well-known/agent-card.json", json_response({"supportedInterfaces": [_iface("1.0")]})
    )
    fake_http.route("POST", "/", a2a_agent(versions=("1.0",)))
    workspace = make_workspace("uncached", url=fake_http.url)
    _deliver(workspace)
    _deliver(workspace)
    assert sent_versions(fake_http.requests) == [CARD_1, SEND_1, CARD_1, SEND_1]


@pytest.mark.django_db
@pytest.mark.parametrize("forced, expected", [("1.0", SEND_1), ("0.3", SEND_0)])
def test_a_forced_version_reads_no_card_and_never_falls_back(fake_http, forced, expected):
    other = "0.3" if forced == "1.0" else "1.0"
    fake_http.route(
        "GET", "/.well-known/agent-card.json", json_response({"supportedInterfaces": [_iface(other)]})
    )
    fake_http.route("POST", "/", a2a_agent(versions=(other,)))
    workspace = make_workspace("forced", url=fake_http.url, a2a_protocol=forced)
    with pytest.raises(A2AError) as caught:
        _deliver(workspace)
    assert caught.value.reason == "agent returned JSON-RPC error -32601 (method not found)"
    assert caught.value.protocol == forced
    assert sent_versions(fake_http.requests) == [expected]


# --- the card is never a destination, and never a reason to fail ------------------------------------


@pytest.mark.django_db
def test_a_card_naming_other_hosts_or_internal_addresses_is_never_called(fake_http, monkeypatch):
    with FakeHttpServer() as internal:
        internal.route("POST", "/", a2a_agent(versions=("1.0", "0.3")))
        card = {
            "supportedInterfaces": [
                _iface("1.0", url="http://169.254.169.254/latest/meta-data/"),
                _iface("1.0", url=internal.url + "/"),
                _iface("0.3", url="https://agent.elsewhere.example/a2a"),
            ],
            "url": "http://[fd00:ec2::254]/",
        }
        fake_http.route("GET", "/.well-known/agent-card.json", json_response(card))
        fake_http.route("POST", "/", a2a_agent(versions=("1.0",)))
        connected = []
        original = socket.socket.connect
        monkeypatch.setattr(socket.socket, "connect", lambda s, a: connected.append(a[:2]) or original(s, a))
        workspace = make_workspace("tricked", url=fake_http.url + "/")
        assert _deliver(workspace).protocol == "1.0"
        assert internal.requests == []
    port = int(fake_http.url.rsplit(":", 1)[1])
    assert {address for address in connected} == {("127.0.0.1", port)}
    assert sent_versions(fake_http.requests) == [CARD_1, SEND_1]


def _slow_card(request):
    return FakeResponse(200, b"{}", {"Content-Type": "application/json"}, delay=2)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "card_response",
    [
        lambda r: FakeResponse(500, b"secret"),
        lambda r: FakeResponse(200, b"{not json"),
        lambda r: FakeResponse(200, b"\xff\xfe"),
        lambda r: FakeResponse(200, json.dumps([1, 2]).encode()),
        lambda r: FakeResponse(200, b"[" * 100_000 + b"]" * 100_000),
        lambda r: FakeResponse(200, b" " * (a2a_protocol.CARD_MAX_BYTES + 1)),
        lambda r: FakeResponse(307, b"", {"Location": "http://169.254.169.254/"}),
        _slow_card,
    ],
    ids=["500", "not-json", "not-utf8", "array", "deep", "too-large", "redirect", "slow"],
)
def test_a_broken_card_never_fails_a_delivery(fake_http, monkeypatch, card_response):
    monkeypatch.setattr(a2a_protocol, "CARD_TIMEOUT_SECONDS", 0.5)
    fake_http.route("GET", "/.well-known/agent-card.json", card_response)
    fake_http.route("GET", "/.well-known/agent.json", card_response)
    fake_http.route("POST", "/", a2a_agent(versions=("1.0",), reply="still here"))
    workspace = make_workspace("broken card", url=fake_http.url)
    reply = _deliver(workspace)
    assert (reply.text, reply.protocol) == ("still here", "1.0")
    assert sent_versions(fake_http.requests) == [CARD_1, CARD_0, SEND_1]


@pytest.mark.django_db
def test_card_size_limit_edge(fake_http):
    card = json.dumps({"supportedInterfaces": [_iface("0.3")]}).encode()
    padded = card + b" " * (a2a_protocol.CARD_MAX_BYTES - len(card))
    assert len(padded) == a2a_protocol.CARD_MAX_BYTES
    fake_http.route("GET", "/.well-known/agent-card.json", lambda r: FakeResponse(200, padded))
    assert a2a_protocol.agent_card_protocol(url=fake_http.url) == "0.3"
    fake_http.route("GET", "/.well-known/agent-card.json", lambda r: FakeResponse(200, padded + b" "))
    assert a2a_protocol.agent_card_protocol(url=fake_http.url) is None


@pytest.mark.django_db
def test_the_card_is_read_under_the_delivery_network_policy(fake_http, settings):
    settings.A2A_ALLOW_PRIVATE_NETWORKS = False
    fake_http.route(
        "GET", "/.well-known/agent-card.json", json_response({"supportedInterfaces": [_iface("1.0")]})
    )
    workspace = make_workspace("private", url=fake_http.url)
    with pytest.raises(A2AError, match="private and loopback addresses are not allowed"):
        _deliver(workspace)
    assert fake_http.requests == []  # neither the card nor the message left
