"""A progress bar (percentage, rate, ETA) on stderr when it is a terminal; nothing otherwise."""

from __future__ import annotations

import sys
from typing import TextIO

from tqdm import tqdm


class Bar:
    """tqdm, started once the total is known (a listing or HEAD comes first)."""

    def __init__(self, label: str, stream: TextIO | None = None, interval: float = 0.1) -> None:
        self.stream = stream or sys.stderr
        self.label, self.interval = label, interval
        self._bar: tqdm | None = None

    def started(self, total: int) -> None:
        self._bar = tqdm(
            total=total,
            desc=self.label,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            file=self.stream,
            mininterval=self.interval,
            disable=not self.stream.isatty(),  # piped or logged: no control characters
            leave=True,
        )

    def advance(self, n: int) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
