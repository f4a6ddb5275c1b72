"""The operator's in-memory view of ModelVersions and ModelPromotions.

Kept current by watch events and by the operator's own writes (write-through: a write's response
is the newest state the operator knows). An update never replaces a newer one, so a late watch
event or a slow concurrent write cannot roll the view back. Reads are per (namespace, model), and
what the trust views leave of each object is worked out once per resourceVersion, not per read.
"""

from __future__ import annotations

import collections
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from modelreg.storage.kube import Gone

Key = tuple[str, str]  # namespace, name
VERSIONS, PROMOTIONS = "modelversions", "modelpromotions"


def newer(candidate: str | None, known: str | None) -> bool:
    """Is `candidate` a later resourceVersion than `known`? They are opaque to clients, but every
    API server (etcd's revision) and the emulator issue increasing integers; anything else is
    taken as newer, so the view can only err towards the latest event."""
    if known is None or candidate is None:
        return True
    if candidate.isdigit() and known.isdigit():
        return int(candidate) > int(known)
    return candidate != known


_SHARED: dict[str, str] = {}
_SHARED_LIMIT = 65_536  # bounded: tenants write these strings
_COMPACT_DEPTH = 16  # deeper parts (a hostile nesting) are kept as parsed: no recursion limit to hit


def _share(text: str) -> str:
    found = _SHARED.get(text)
    if found is not None:
        return found
    if len(_SHARED) < _SHARED_LIMIT and len(text) <= 32:
        _SHARED[text] = text
    return text


def _compact(value: Any, depth: int = 0) -> Any:
    """A copy sharing its keys and short strings with every other body: a parsed body brings its
    own copy of every key, about half of the memory 10,000 versions take."""
    if depth > _COMPACT_DEPTH:
        return value
    if isinstance(value, Mapping):
        return {_compact(k, depth): _compact(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_compact(v, depth + 1) for v in value]
    if type(value) is str:  # exactly str: a subclass (an enum) is left as it is
        return _share(value)
    return value


class View:
    def __init__(self, trust: Mapping[str, Callable[[Mapping[str, Any]], dict[str, Any]]]) -> None:
        self._trust = trust  # plural -> what the operator can prove of an object
        self._bodies: dict[str, dict[Key, dict[str, Any]]] = collections.defaultdict(dict)
        self._models: dict[str, dict[tuple[str, str], set[str]]] = collections.defaultdict(
            lambda: collections.defaultdict(set)
        )
        # ModelVersions by version number, parent version and stage (as stored): a version's
        # duplicates, children and a stage's holder are found without walking the model's versions.
        self._indexed: dict[tuple[str, str, str, Any], set[str]] = collections.defaultdict(set)
        self._groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}  # (plural, ns, model): trusted bodies
        self._trusted: dict[str, dict[Key, tuple[str | None, dict[str, Any]]]] = collections.defaultdict(dict)
        # The resourceVersion each deleted object was deleted at: a write's response that arrives
        # after the DELETED event must not bring the object back.
        self._deleted: dict[str, dict[Key, str | None]] = collections.defaultdict(dict)

    def observe(self, plural: str, event_type: str | None, body: Mapping[str, Any]) -> bool:
        """Take a watch event; False when it tells nothing new (the echo of an own write, or late)."""
        meta = body["metadata"]
        key = (meta["namespace"], meta["name"])
        if event_type == "DELETED":
            self._forget(plural, key, meta.get("resourceVersion"))
            return True
        return self.remember(plural, body)

    def remember(self, plural: str, body: Mapping[str, Any]) -> bool:
        meta = body["metadata"]
        key = (meta["namespace"], meta["name"])
        known = self._bodies[plural].get(key)
        version = meta.get("resourceVersion")
        if known is not None and not newer(version, known["metadata"].get("resourceVersion")):
            return False
        if known is None and key in self._deleted[plural]:
            if not newer(version, self._deleted[plural][key]):
                return False  # older than its deletion
            del self._deleted[plural][key]  # created again
        body = _compact(body)
        if known is not None:
            self._index(plural, key, known, add=False)
        self._bodies[plural][key] = body
        self._index(plural, key, body, add=True)
        return True

    def _index(self, plural: str, key: Key, body: Mapping[str, Any], add: bool) -> None:
        spec = body.get("spec") or {}
        model = spec.get("modelName")
        self._groups.pop((plural, key[0], model), None)
        entries: list[tuple[dict[Any, set[str]], Any]] = [(self._models[plural], (key[0], model))]
        if plural == VERSIONS:
            values = {
                "version": spec.get("version"),
                "parent": (spec.get("lineage") or {}).get("parentVersion"),
                "stage": (body.get("status") or {}).get("stage"),
            }
            for field, value in values.items():
                if type(value) in (int, str):  # what the schema allows (a bool is not a version)
                    entries.append((self._indexed, (field, key[0], model, value)))
        for index, entry in entries:
            if add:
                index[entry].add(key[1])
            elif entry in index:
                index[entry].discard(key[1])
                if not index[entry]:  # nothing left behind by versions come and gone
                    del index[entry]

    async def write(self, plural: str, namespace: str, name: str, write: Awaitable[dict[str, Any]]) -> dict[str, Any]:
        """An own write, through the view: its response is remembered; a 404 forgets the object (deleted
        meanwhile: never acted on again)."""
        try:
            written = await write
        except Gone:
            self.forget(plural, namespace, name)
            raise
        self.remember(plural, written)
        return written

    def unlisted(
        self, plural: str, namespace: str | None, resource_version: str | None, listed: set[Key]
    ) -> list[dict[str, Any]]:
        """What a listing (of one namespace; None: of everything watched) no longer shows, though the
        view knew it from before the listing was taken: deleted while a watch was away (after a
        410 Gone, kopf re-lists without reporting deletions)."""
        scope = (
            list(self._bodies[plural])
            if namespace is None
            else [(ns, n) for (ns, _), names in self._models[plural].items() if ns == namespace for n in names]
        )
        return [
            self._bodies[plural][key]
            for key in scope
            if key not in listed
            and not newer(self._bodies[plural][key]["metadata"].get("resourceVersion"), resource_version)
        ]

    def forget(self, plural: str, namespace: str, name: str, resource_version: str | None = None) -> None:
        """Gone (a DELETED event, or a write answered 404)."""
        self._forget(plural, (namespace, name), resource_version)

    def _forget(self, plural: str, key: Key, resource_version: str | None = None) -> None:
        body = self._bodies[plural].pop(key, None)
        known = body["metadata"].get("resourceVersion") if body else None
        tombstone = resource_version if resource_version is not None and newer(resource_version, known) else known
        self._deleted[plural][key] = tombstone
        self._trusted[plural].pop(key, None)
        if body is not None:
            self._index(plural, key, body, add=False)

    def get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self._bodies[plural].get((namespace, name))

    def has(self, plural: str, namespace: str, name: str) -> bool:
        return (namespace, name) in self._bodies[plural]

    def names(self, plural: str, namespace: str, model: str) -> list[str]:
        return sorted(self._models[plural].get((namespace, model), ()))

    def indexed(self, namespace: str, model: str, field: str, values: Iterable[Any]) -> list[dict[str, Any]]:
        """The model's ModelVersions (as stored) whose `field` is one of `values`: "version", lineage's
        "parent" version, or status "stage"."""
        names = {n for value in values for n in self._indexed.get((field, namespace, model, value), ())}
        found = (self._bodies[VERSIONS].get((namespace, n)) for n in sorted(names))
        return [b for b in found if b is not None]

    def of_model(self, plural: str, namespace: str, model: str) -> list[dict[str, Any]]:
        """This model's objects as stored (status unfiltered)."""
        found = (self._bodies[plural].get((namespace, n)) for n in self.names(plural, namespace, model))
        return [b for b in found if b is not None]

    def trusted(self, plural: str, namespace: str, model: str, fresh: bool = True) -> list[dict[str, Any]]:
        """This model's objects through the trust views: status the operator cannot prove it wrote is
        absent. `fresh`: new top-level and status dicts, which callers may update without touching the
        view; else the view's own (read-only use: no copy per object per read)."""
        group = (plural, namespace, model)
        if group not in self._groups:  # kept until one of the model's objects changes
            self._groups[group] = [self.trusted_body(plural, body) for body in self.of_model(plural, namespace, model)]
        if fresh:
            return [{**b, "status": dict(b.get("status") or {})} for b in self._groups[group]]
        return list(self._groups[group])

    def trusted_indexed(self, namespace: str, model: str, field: str, value: Any) -> list[dict[str, Any]]:
        """`indexed`, through the trust view (read-only). The trust view only ever removes status, so
        a stage it leaves was stored."""
        return [self.trusted_body(VERSIONS, b) for b in self.indexed(namespace, model, field, [value])]

    def trusted_body(self, plural: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """One of the view's objects through its trust view (read-only; judged once per resourceVersion)."""
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        version = body["metadata"].get("resourceVersion")
        memo = self._trusted[plural].get(key)
        if memo is None or memo[0] != version:
            memo = (version, self._trust[plural](body))
            self._trusted[plural][key] = memo
        return memo[1]
