"""``wsgisession demo`` as a user runs it: a subprocess on a free port, killed by PID."""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
from pathlib import Path

__all__ = ["DemoProcess"]

ROOT = Path(__file__).resolve().parent.parent


class DemoProcess:
    """The demo command running; ``url`` once it printed it, ``lines`` it printed."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        environment = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "wsgisession", "demo", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment,
            cwd=ROOT,
        )
        self.lines: list[str] = []
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.url = ""
        while "press Ctrl-C" not in "".join(self.lines):
            self.lines.append(self.read_line())
            match = re.search(r"http://127\.0\.0\.1:\d+/", self.lines[-1])
            if match:
                self.url = match.group(0)

    def __repr__(self) -> str:
        return f"DemoProcess(pid={self.proc.pid}, url={self.url!r})"

    def read_line(self, timeout: float = 20.0) -> str:
        """The next line the demo prints; AssertionError if it prints none in time."""
        try:
            return self._lines.get(timeout=timeout)
        except queue.Empty:
            err = self.stop()
            raise AssertionError(
                f"the demo printed nothing more (exit status {self.proc.poll()}): "
                f"{self.lines} {err}"
            ) from None

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)

    def stop(self) -> str:
        """Stop the demo (SIGTERM to its PID); what it wrote on stderr."""
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(timeout=10)
        return self.proc.stderr.read() if self.proc.stderr else ""
