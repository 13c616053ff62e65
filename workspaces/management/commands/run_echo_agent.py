"""`python manage.py run_echo_agent --port 8001 [--delay S] [--reply TEXT]`."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from workspaces.echo_agent import EchoAgentServer


class Command(BaseCommand):
    help = "Run a small A2A agent (1.0 and 0.3) that answers every message (echo, or a fixed reply)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8001)
        parser.add_argument("--delay", type=float, default=0.0, help="seconds before answering")
        parser.add_argument("--reply", default=None, help="fixed reply instead of the echo")

    def handle(self, *args: Any, **options: Any) -> None:
        server = EchoAgentServer(
            (options["host"], options["port"]), reply=options["reply"], delay=options["delay"]
        )
        self.stdout.write(
            f"Echo agent listening on {server.url}, A2A 1.0 and 0.3 "
            f"(agent card at {server.url}.well-known/agent-card.json)"
        )
        self.stdout.flush()
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
