"""Outbound notifications: which events exist, what their payload says, when a delivery is retried,
which pending delivery may go next (per-object order, a bounded outbox), and the seal that proves
the operator wrote an outbox entry."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from modelreg.domain.seals import Sealer

REGISTERED = "model_version.registered"
VERIFIED = "model_version.verified"
INVALID = "model_version.invalid"
REQUESTED = "promotion.requested"
APPROVED = "promotion.approved"
SUCCEEDED = "promotion.succeeded"
FAILED = "promotion.failed"
STAGE_CHANGED = "stage.changed"
EVENT_TYPES = (REGISTERED, VERIFIED, INVALID, REQUESTED, APPROVED, SUCCEEDED, FAILED, STAGE_CHANGED)

# A condition message can quote user-written text; a payload stays small whatever it says.
MAX_TEXT = 1024


@dataclass(frozen=True)
class Notice:
    """Something happened to one object, worth telling the configured endpoints."""

    type: str
    ref: Mapping[str, str]  # apiVersion, kind, namespace, name, uid
    data: Mapping[str, Any]


def object_ref(body: Mapping[str, Any]) -> dict[str, str]:
    meta = body.get("metadata") or {}
    return {
        "apiVersion": str(body.get("apiVersion") or ""),
        "kind": str(body.get("kind") or ""),
        "namespace": str(meta.get("namespace") or ""),
        "name": str(meta.get("name") or ""),
        "uid": str(meta.get("uid") or ""),
    }


def notice(type_: str, body: Mapping[str, Any], **data: Any) -> Notice:
    spec = body.get("spec") or {}
    ref = object_ref(body)
    excerpt = {"model": spec.get("modelName"), "version": spec.get("version")}
    if "targetStage" in spec:
        excerpt["targetStage"] = spec["targetStage"]
    sha256 = (spec.get("artifact") or {}).get("sha256")
    if sha256:
        excerpt["sha256"] = sha256
    excerpt.update(data)
    clipped = {k: v[:MAX_TEXT] if isinstance(v, str) else v for k, v in excerpt.items() if v is not None}
    return Notice(type_, ref, clipped)


def payload(item: Notice, id_: str, time: str) -> str:
    """The exact body that is signed and sent (stored as text, so every retry sends the same bytes)."""
    body = {"id": id_, "type": item.type, "time": time, "object": dict(item.ref), "data": dict(item.data)}
    return json.dumps(body, separators=(",", ":"), sort_keys=True)


@dataclass(frozen=True)
class Endpoint:
    name: str
    url: str
    events: frozenset[str] = frozenset()  # empty: every type
    namespaces: frozenset[str] = frozenset()  # empty: every namespace

    def wants(self, item: Notice) -> bool:
        return (not self.events or item.type in self.events) and (
            not self.namespaces or item.ref["namespace"] in self.namespaces
        )


def retryable(status: int | None) -> bool:
    """Network errors and timeouts (None), 408, 429 and 5xx are tried again; other answers are final."""
    return status is None or status in (408, 429) or status >= 500


def delivered(status: int | None) -> bool:
    return status is not None and 200 <= status < 300


def retry_delay(attempts: int, base: float, cap: float, jitter: float) -> float:
    """Exponential backoff with equal jitter (`jitter` in [0, 1)): receivers that went down together
    are not hit again together, and no retry comes sooner than half its step."""
    step = min(cap, base * 2 ** min(max(attempts - 1, 0), 30))
    return step / 2 + step / 2 * jitter


@dataclass
class Pending:
    """One delivery of one notice to one endpoint, as kept in the outbox."""

    key: str  # sortable: the order notices were published in
    endpoint: str
    id: str
    type: str
    ref: Mapping[str, str]
    body: str
    attempts: int = 0
    due: float = 0.0
    in_flight: bool = field(default=False, compare=False)
    seal: str = field(default="", compare=False)  # see OutboxSeals: stored with the entry

    @property
    def ordering(self) -> tuple[str, str]:
        return (self.endpoint, self.ref.get("uid") or f"{self.ref.get('namespace')}/{self.ref.get('name')}")

    @functools.cached_property
    def record(self) -> str:
        """What the outbox stores (made once: the outbox's byte bound sums these on every publish)."""
        return json.dumps(
            {
                "endpoint": self.endpoint,
                "id": self.id,
                "type": self.type,
                "ref": self.ref,
                "body": self.body,
                "seal": self.seal,
            }
        )

    @property
    def size(self) -> int:
        return len(self.key) + len(self.record)

    @classmethod
    def from_record(cls, key: str, text: str) -> Pending:
        """An entry as stored (ValueError, KeyError or TypeError if it is not one); whether the
        operator wrote it is for `OutboxSeals.proven` to say (an unsealed record reads as `seal=""`)."""
        record = json.loads(text)
        fields = [record["endpoint"], record["id"], record["type"], record["body"], record.get("seal", "")]
        ref = record["ref"]
        if not all(isinstance(f, str) for f in fields) or not isinstance(ref, dict):
            raise TypeError("an outbox record holds strings and a ref")
        endpoint, id_, type_, body, seal = fields
        return cls(key, endpoint, id_, type_, ref, body, seal=seal)


OUTBOX = "outbox"


def _sealed_parts(namespace: str, entry: Pending) -> list[Any]:
    """Everything that is signed and delivered or decides where and in what order: the outbox it
    sits in (the namespace of the notice), its key (its place in the order), the endpoint, the
    message id, the type, the object and the exact body."""
    return [namespace, entry.key, entry.endpoint, entry.id, entry.type, dict(entry.ref), entry.body]


class OutboxSeals:
    """Outbox entries the operator can prove it wrote. The outbox ConfigMaps live in the operator's
    namespace, but whoever may write ConfigMaps there must still not get a notice signed with an
    endpoint's key: an entry counts only with a seal (the operator's seal key, previous keys
    accepted) over exactly what it holds."""

    def __init__(self, sealer: Sealer) -> None:
        self.sealer = sealer

    def sealed(self, namespace: str, entry: Pending) -> Pending:
        return replace(entry, seal=self.sealer.seal(OUTBOX, *_sealed_parts(namespace, entry)))

    def proven(self, namespace: str, entry: Pending) -> bool:
        return self.sealer.verifies(entry.seal, OUTBOX, *_sealed_parts(namespace, entry))


def heads(pending: Iterable[Pending]) -> list[Pending]:
    """The oldest pending delivery of each (endpoint, object): only it may be sent, so a later
    notice about an object never overtakes an earlier one."""
    first: dict[tuple[str, str], Pending] = {}
    for item in sorted(pending, key=lambda p: p.key):
        first.setdefault(item.ordering, item)
    return list(first.values())


# A ConfigMap holds at most 1 MiB: an outbox stays well under it whatever the texts escape to.
MAX_OUTBOX_BYTES = 768 * 1024


def overflow(pending: Sequence[Pending], cap: int, max_bytes: int = MAX_OUTBOX_BYTES) -> list[Pending]:
    """What a full outbox drops to keep `cap` entries and `max_bytes`: the oldest first, never one
    being sent."""
    count, size = len(pending), sum(p.size for p in pending)
    dropped = []
    for item in sorted((p for p in pending if not p.in_flight), key=lambda p: p.key):
        if count <= cap and size <= max_bytes:
            break
        dropped.append(item)
        count, size = count - 1, size - item.size
    return dropped
