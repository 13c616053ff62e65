"""Real A2A agents built with the official `a2a-sdk` 1.x, served by uvicorn on 127.0.0.1.

    with start_sdk_agent("default") as agent:   # 1.0 only, as the SDK serves by default
        workspace.url = agent.url

Kinds: `default` (1.0 only, answers with a Message), `compat` (1.0 with the SDK's 0.3
compatibility on the same endpoint), `task` (answers with a Task carrying two artifacts),
`failed` (ends its task failed, with an upstream message that must never leak). `card=False`
serves no agent card. Every HTTP request is recorded (`requests`: method, path, A2A-Version
header) and every message the executor saw (`messages`: text, messageId, contextId, metadata).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from a2a.helpers.proto_helpers import new_task_from_user_message, new_text_message, new_text_part
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types.a2a_pb2 import AgentCapabilities, AgentCard, AgentInterface, AgentSkill
from google.protobuf.json_format import MessageToDict
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request

from tests.support.fake_http import free_port

KINDS = ("default", "compat", "task", "failed")
FAILURE_TEXT = "database password hunter2 rejected"  # upstream text that must never be stored


@dataclass
class SdkAgent:
    kind: str
    url: str
    requests: list[dict[str, str]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)

    def posts(self) -> list[dict[str, str]]:
        return [r for r in self.requests if r["method"] == "POST"]


class _Executor(AgentExecutor):
    def __init__(self, agent: SdkAgent) -> None:
        self.agent = agent

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        message = context.message
        text = context.get_user_input()
        self.agent.messages.append(
            {
                "text": text,
                "messageId": message.message_id if message else "",
                "contextId": message.context_id if message else "",
                "metadata": MessageToDict(message.metadata)
                if message and message.HasField("metadata")
                else {},
                "method": context.call_context.state.get("method", ""),
            }
        )
        if self.agent.kind in {"default", "compat"}:
            await event_queue.enqueue_event(new_text_message(f"echo: {text}", context_id=context.context_id))
            return
        task = context.current_task or new_task_from_user_message(message)
        if context.current_task is None:
            await event_queue.enqueue_event(task)
        updater = TaskUpdater(event_queue, task.id, task.context_id)
        await updater.start_work()
        if self.agent.kind == "failed":
            await updater.failed(new_text_message(FAILURE_TEXT, context_id=task.context_id, task_id=task.id))
            return
        await updater.add_artifact([new_text_part(f"first: {text}")], name="first")
        await updater.add_artifact([new_text_part("second part")], name="second")
        await updater.complete()

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        raise NotImplementedError


def _card(agent: SdkAgent) -> AgentCard:
    interfaces = [AgentInterface(url=agent.url, protocol_binding="JSONRPC", protocol_version="1.0")]
    if agent.kind == "compat":
        interfaces.append(AgentInterface(url=agent.url, protocol_binding="JSONRPC", protocol_version="0.3"))
    return AgentCard(
        name=f"sdk-{agent.kind}",
        description="An agent built with the official A2A SDK, for interop tests.",
        supported_interfaces=interfaces,
        version="1.0.0",
        capabilities=AgentCapabilities(streaming=False),
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain"],
        skills=[AgentSkill(id="echo", name="Echo", description="Echoes.", tags=["echo"])],
    )


@contextmanager
def start_sdk_agent(kind: str, *, card: bool = True) -> Iterator[SdkAgent]:
    """Serve an SDK agent of `kind` on a free loopback port for the duration of the block."""
    assert kind in KINDS, kind
    port = free_port()
    agent = SdkAgent(kind=kind, url=f"http://127.0.0.1:{port}/")
    agent_card = _card(agent)
    handler = DefaultRequestHandler(
        agent_executor=_Executor(agent), task_store=InMemoryTaskStore(), agent_card=agent_card
    )
    routes = create_jsonrpc_routes(handler, "/", enable_v0_3_compat=(kind == "compat"))
    if card:
        routes += create_agent_card_routes(agent_card)

    async def record(request: Request, call_next: Any) -> Any:
        agent.requests.append(
            {
                "method": request.method,
                "path": request.url.path,
                "version": request.headers.get("a2a-version", ""),
            }
        )
        return await call_next(request)

    app = Starlette(routes=routes, middleware=[Middleware(BaseHTTPMiddleware, dispatch=record)])

    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True, name=f"sdk-agent-{kind}")
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"SDK agent {kind} did not start")
        time.sleep(0.02)
    try:
        yield agent
    finally:
        server.should_exit = True
        thread.join(10)
