"""What a reconcile did, told to people and systems: Events, audit lines, notifications.

Events are posted in the background (as kopf posts its own): no reconcile waits for one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from modelreg.audit import audit
from modelreg.domain.notifications import Notice, notice, object_ref
from modelreg.domain.redaction import redact
from modelreg.domain.transitions import Transition
from modelreg.services.notifications import Notifier
from modelreg.storage.kube import KubeStore

logger = logging.getLogger(__name__)


@dataclass
class Outcome:
    """What a reconcile did: transitions of objects, and notices richer than a transition's own."""

    transitions: list[tuple[Mapping[str, Any], Transition]] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)

    def add(self, body: Mapping[str, Any], transition: Transition) -> None:
        self.transitions.append((body, transition))
        if transition.notice:
            stage = (body.get("status") or {}).get("stage")
            self.notices.append(
                notice(transition.notice, body, reason=transition.current, message=transition.message, stage=stage)
            )


class Reporter:
    def __init__(self, kube: KubeStore, notifier: Notifier) -> None:
        self.kube, self.notifier = kube, notifier
        self._posting: set[asyncio.Task] = set()

    def report(self, outcome: Outcome) -> None:
        self.notifier.publish(outcome.notices)
        for body, transition in outcome.transitions:
            if transition.event:
                ref = object_ref(body)
                post = self._post(ref, transition.type, transition.reason, transition.message)
                task = asyncio.get_running_loop().create_task(post)
                self._posting.add(task)
                task.add_done_callback(self._posting.discard)
            if transition.previous != transition.current:  # a state change: one audit line
                audit(body, transition.previous, transition.current or "", transition.message)

    async def _post(self, ref: dict[str, str], type_: str, reason: str, message: str) -> None:
        try:
            await self.kube.post_event(ref, type_, reason, message)
        except Exception as exc:  # a courtesy: the status and the audit line carry the change
            logger.warning("Event %s on %s not posted: %s", reason, ref["name"], redact(str(exc)))
