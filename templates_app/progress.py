"""A small text progress bar for the bundle commands (no extra dependency)."""

from __future__ import annotations

from typing import TextIO


class ProgressBar:
    """Redraws one line per stage on a terminal; prints plain lines when not a terminal."""

    def __init__(self, stream: TextIO, width: int = 30) -> None:
        self.stream = stream
        self.width = width
        self.stage: str | None = None
        self.tty = stream.isatty() if hasattr(stream, "isatty") else False

    def __call__(self, stage: str, done: int, total: int) -> None:
        total = max(total, 1)
        filled = int(self.width * min(done, total) / total)
        line = f"{stage:<12} [{'#' * filled}{'.' * (self.width - filled)}] {done}/{total}"
        if self.tty:
            prefix = "\n" if self.stage not in (None, stage) else ""
            self.stream.write(f"{prefix}\r{line}")
        elif done >= total or self.stage != stage:
            self.stream.write(line + "\n")
        self.stage = stage
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self.stage is not None:
            self.stream.write("\n")
            self.stream.flush()
