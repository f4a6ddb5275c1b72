"""A background thread that does one round of a controller's work every `period` seconds."""

from __future__ import annotations

import threading
from typing import Self


class Periodic:
    """Subclasses define `tick()` and `retried` (the errors after which the next round simply
    tries again, e.g. a conflicting write)."""

    retried: tuple[type[BaseException], ...] = ()

    def __init__(self, name: str, period: float) -> None:
        self.period = period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def tick(self) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            try:
                self.tick()
            except self.retried:
                continue

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
