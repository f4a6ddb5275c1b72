"""One due-time queue for every object: idle cost does not grow with the registry.

Each key is queued at most once, at its earliest due time; a key being worked on is never handed
out twice (asked for again meanwhile, it comes back as soon as the work is done).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Hashable

from modelreg.domain.redaction import redact
from modelreg.services.failures import FailureReports

logger = logging.getLogger(__name__)


class DueQueue:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._due: dict[Hashable, float] = {}
        self._heap: list[tuple[float, int, Hashable]] = []
        self._order = itertools.count()
        self._working: set[Hashable] = set()
        self._again: dict[Hashable, float] = {}  # asked for while being worked on: due then
        self._changed = asyncio.Event()

    def schedule(self, key: Hashable, delay: float = 0.0) -> None:
        """Due in `delay` seconds, or sooner if it already was."""
        due = self.clock() + max(0.0, delay)
        if key in self._working:
            self._again[key] = min(self._again.get(key, due), due)
            return
        if key in self._due and self._due[key] <= due:
            return
        self._due[key] = due
        heapq.heappush(self._heap, (due, next(self._order), key))
        self._changed.set()

    def discard(self, key: Hashable) -> None:
        self._due.pop(key, None)  # its heap entry is skipped when it surfaces
        self._again.pop(key, None)

    async def take(self) -> Hashable:
        """The next due key; call `done` with it afterwards."""
        while True:
            while self._heap and self._due.get(self._heap[0][2]) != self._heap[0][0]:
                heapq.heappop(self._heap)  # rescheduled sooner, or discarded
            wait = self._heap[0][0] - self.clock() if self._heap else 3600.0
            if wait <= 0:
                _, _, key = heapq.heappop(self._heap)
                del self._due[key]
                self._working.add(key)
                return key
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), wait)

    def done(self, key: Hashable, next_delay: float | None = None) -> None:
        """Work on `key` finished; due again in `next_delay` seconds (None: only if asked again)."""
        self._working.discard(key)
        now = self.clock()
        candidates = [due - now for due in (self._again.pop(key, None),) if due is not None]
        if next_delay is not None:
            candidates.append(next_delay)
        if candidates:
            self.schedule(key, min(candidates))

    def depth(self) -> int:
        """Keys due now and not yet taken."""
        now = self.clock()
        return sum(1 for due in self._due.values() if due <= now)

    def lag(self) -> float:
        """How long the most overdue key has waited (0 when none is due)."""
        now = self.clock()
        return max((now - due for due in self._due.values() if due <= now), default=0.0)


async def drain(
    queue: DueQueue,
    process: Callable[[Hashable], Awaitable[float | None]],
    workers: int,
    backoff: Callable[[int], float],
    reports: FailureReports,
) -> None:
    """`workers` tasks taking due keys; `process` returns when the key is due again (None: only
    when asked). A failure (the API down) brings the same key back after `backoff(failures in a
    row)`, and is reported (once per streak) on the object."""

    async def work() -> None:
        while True:
            key = await queue.take()
            next_delay = None
            try:
                next_delay = await process(key)
                reports.succeeded(key)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                next_delay = backoff(reports.failed(key, exc))
                logger.warning(
                    "%s %s: %s; again in %.1f s", reports.kind, "/".join(map(str, key)), redact(str(exc)), next_delay
                )
            finally:
                queue.done(key, next_delay)

    await asyncio.gather(*(work() for _ in range(workers)))
