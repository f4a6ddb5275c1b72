"""Artifact locations, directory digests and the verdicts of a verification."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

_S3_URI = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/(?P<key>.+)$")


class Reason(StrEnum):
    VERIFIED = "Verified"
    VERIFYING = "Verifying"
    CHECKSUM_MISMATCH = "ChecksumMismatch"
    SIZE_MISMATCH = "SizeMismatch"
    NOT_FOUND = "NotFound"
    ACCESS_DENIED = "AccessDenied"
    STORAGE_UNAVAILABLE = "StorageUnavailable"
    ARTIFACT_CHANGED = "ArtifactChanged"
    INVALID_URI = "InvalidURI"
    FORBIDDEN = "Forbidden"
    TOO_LARGE = "TooLarge"
    TIMEOUT = "Timeout"


# Failures that fix themselves (an outage ends, an upload lands, a Secret is corrected, slow
# storage recovers): retried with backoff. The others only change when the stored object changes.
TRANSIENT = frozenset({Reason.NOT_FOUND, Reason.ACCESS_DENIED, Reason.STORAGE_UNAVAILABLE, Reason.TIMEOUT})


class InvalidURIError(ValueError):
    pass


@dataclass(frozen=True)
class Location:
    bucket: str
    key: str  # for a directory, the prefix, ending in "/"

    @property
    def is_directory(self) -> bool:
        return self.key.endswith("/")

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


# Characters a loader may read as URL syntax (query, fragment, escapes) or a path separator: the
# operator would check one object and a pod could fetch another.
_AMBIGUOUS = re.compile(r"[?#%\\\x00-\x1f\x7f]")


def parse_uri(uri: str) -> Location:
    match = _S3_URI.fullmatch(uri)
    if not match:
        raise InvalidURIError(
            f"artifact URI {uri!r} is not of the form s3://bucket/key or s3://bucket/prefix/ "
            "(only S3-compatible storage is supported)"
        )
    key = match["key"]
    parts = key.split("/")
    if _AMBIGUOUS.search(key) or any(p in ("", ".", "..") for p in parts[:-1]) or parts[-1] in (".", ".."):
        raise InvalidURIError(
            f"artifact URI {uri!r} has a key a loader could read differently (?, #, %, \\, control characters, "
            "or empty, '.' or '..' path segments)"
        )
    return Location(bucket=match["bucket"], key=key)


def within(location: Location, prefixes: Iterable[str]) -> bool:
    """Is `location` under one of `prefixes` (`s3://bucket/prefix/`, or `s3://bucket/` for a bucket)?
    Compared as text after parsing (which refuses `.`/`..` segments: no climbing out of a prefix)."""
    if any(p in (".", "..") for p in location.key.split("/")):
        return False
    target = f"s3://{location.bucket}/{location.key}"
    return any(target.startswith(p if p.endswith("/") else p + "/") for p in prefixes)


def forbidden(location: Location, namespace: str, prefixes: Iterable[str]) -> Verdict:
    # Names only what the user wrote: nothing about what storage holds there.
    return Verdict(
        Reason.FORBIDDEN,
        f"{location} is outside the storage prefixes namespace {namespace} may use "
        f"({', '.join(sorted(prefixes)) or 'none'}); nothing was read",
    )


def judge_bounds(snapshot: Snapshot, max_bytes: int, location: Location) -> Verdict | None:
    """Too large to verify: fails before any byte is downloaded."""
    if snapshot.size <= max_bytes:
        return None
    return Verdict(
        Reason.TOO_LARGE,
        f"{location} holds {snapshot.size} bytes, over verification.maxArtifactBytes ({max_bytes})",
    )


@dataclass(frozen=True)
class StoredObject:
    """One object as storage describes it, before any body byte is read."""

    key: str  # relative to the directory prefix for directory members
    size: int
    etag: str
    version_id: str | None = None
    sha256: str | None = None  # a full-object SHA-256 that storage itself vouches for
    last_modified: str | None = None
    # the checksum algorithms a listing names for it (no values); None when the listing names none
    checksum_algorithms: tuple[str, ...] | None = None

    @property
    def may_carry_sha256(self) -> bool:
        """Whether asking storage (a HEAD) could yield a SHA-256 for it: not if its listing said otherwise."""
        return self.checksum_algorithms is None or "SHA256" in self.checksum_algorithms


@dataclass(frozen=True)
class Snapshot:
    """What storage holds for an artifact, as cheap metadata; identity detects changes."""

    size: int
    etag: str  # a directory's etag is a fingerprint of its listing
    version_id: str | None
    members: tuple[StoredObject, ...] = ()  # directory members, sorted by relative key
    # An ETag is an MD5 for simple uploads (collisions are cheap): a rewrite also moves this.
    last_modified: str | None = None
    sha256: str | None = None  # a single object's full-object SHA-256, as storage vouches for it

    def identity(self) -> dict[str, object]:
        return {
            "etag": self.etag,
            "versionId": self.version_id,
            "sizeBytes": self.size,
            "lastModified": self.last_modified,
        }


def pinned_version(version_id: str | None) -> str | None:
    """An S3 VersionId that names immutable bytes: not "null" (what a bucket without versioning, or
    with it suspended, calls the one object an overwrite replaces)."""
    return version_id if version_id and version_id != "null" else None


def vouches_for(snapshot: Snapshot, proven: Mapping[str, Any]) -> bool | None:
    """Does storage itself say these are the proven bytes, without a byte read? By SHA-256 only,
    never by ETag (an MD5: collisions are cheap), size or LastModified (whole seconds): True for
    the very object version proven (immutable, and what serving reads pinned) or a full-object
    SHA-256 equal to the proven one; False when either says otherwise; None when only reading
    and hashing the bytes again can tell (no checksum, a composite one, or a directory)."""
    proven_version = pinned_version(proven.get("versionId"))
    if proven_version is not None:
        if snapshot.version_id != proven_version:
            return False
        if snapshot.size == proven.get("sizeBytes"):
            return True
    if snapshot.sha256 is not None:
        return snapshot.sha256 == proven.get("sha256")
    return None


def directory_snapshot(objects: Iterable[StoredObject]) -> Snapshot:
    members = tuple(sorted(objects, key=lambda o: o.key))
    fingerprint = hashlib.sha256(
        "".join(
            f"{o.key}\0{o.etag}\0{o.version_id or ''}\0{o.size}\0{o.last_modified or ''}\n" for o in members
        ).encode()
    ).hexdigest()
    newest = max((o.last_modified or "" for o in members), default="") or None
    return Snapshot(
        size=sum(o.size for o in members), etag=fingerprint, version_id=None, members=members, last_modified=newest
    )


def directory_digest(entries: Iterable[tuple[str, str]]) -> str:
    """sha256 of `sha256sum`-style lines `<hex>  <relative-key>\\n`, sorted by key (DESIGN.md)."""
    manifest = "".join(f"{digest}  {key}\n" for key, digest in sorted(entries))
    return hashlib.sha256(manifest.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Verdict:
    reason: Reason
    message: str
    found_sha256: str | None = None
    method: str | None = None  # "S3Checksum" or "Stream" when bytes were proven

    @property
    def verified(self) -> bool:
        return self.reason is Reason.VERIFIED

    @property
    def transient(self) -> bool:
        return self.reason in TRANSIENT


def judge_size(expected: int | None, snapshot: Snapshot, location: Location) -> Verdict | None:
    """A wrong size fails before any byte is downloaded."""
    if expected is None or expected == snapshot.size:
        return None
    return Verdict(
        Reason.SIZE_MISMATCH,
        f"size mismatch at {location}: expected {expected} bytes (spec.artifact.sizeBytes), "
        f"found {snapshot.size} bytes (etag {snapshot.etag})",
    )


def judge_digest(
    expected: str,
    found: str,
    method: str,
    snapshot: Snapshot,
    location: Location,
    previously_verified: dict | None,
) -> Verdict:
    if found == expected:
        return Verdict(
            Reason.VERIFIED,
            f"sha256 {found} of {location} ({snapshot.size} bytes) proven by {method}",
            found,
            method,
        )
    if previously_verified and previously_verified.get("sha256") == expected:
        return Verdict(
            Reason.ARTIFACT_CHANGED,
            f"{location} changed after verification: it was verified with sha256 {expected} "
            f"(etag {previously_verified.get('etag')}) at {previously_verified.get('verifiedTime')}, "
            f"it now holds sha256 {found} (etag {snapshot.etag})",
            found,
            method,
        )
    return Verdict(
        Reason.CHECKSUM_MISMATCH,
        f"checksum mismatch at {location}: expected sha256 {expected} (spec.artifact.sha256), "
        f"found sha256 {found} ({method}, etag {snapshot.etag})",
        found,
        method,
    )
