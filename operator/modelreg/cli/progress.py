"""A progress bar on stderr when it is a terminal; nothing otherwise (logs stay clean)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

_WIDTH = 30


class Bar:
    def __init__(self, label: str, stream: TextIO | None = None, interval: float = 0.1) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.label, self.interval = label, interval
        self.total = self.done = 0
        self.start = self.shown = 0.0

    def started(self, total: int) -> None:
        self.total, self.start = total, time.monotonic()

    def advance(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if self.enabled and (now - self.shown >= self.interval or self.done >= self.total):
            self.shown = now
            self._draw(now)

    def finish(self) -> None:
        if self.enabled and self.start:
            self._draw(time.monotonic())
            print(file=self.stream, flush=True)

    def _draw(self, now: float) -> None:
        share = self.done / self.total if self.total else 1.0
        filled = int(_WIDTH * min(share, 1.0))
        rate = self.done / max(now - self.start, 1e-6) / (1 << 20)
        print(
            f"\r{self.label} [{'#' * filled}{'.' * (_WIDTH - filled)}] {share:6.1%} "
            f"{self.done / (1 << 20):,.1f}/{self.total / (1 << 20):,.1f} MiB {rate:,.1f} MiB/s",
            end="",
            file=self.stream,
            flush=True,
        )
