"""Object storage through boto3, configured by the standard AWS environment.

Failures are mapped to the verification reasons the domain understands, so callers
never see botocore exceptions.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import hashlib
import itertools
import math
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from modelreg.domain.artifacts import (
    Location,
    Reason,
    Snapshot,
    StoredObject,
    directory_digest,
    directory_snapshot,
    pinned_version,
)
from modelreg.domain.redaction import redact

T = TypeVar("T")
_NOT_FOUND = {"404", "NoSuchKey", "NoSuchBucket", "NotFound"}
_DENIED = {"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "Forbidden"}


class StorageFailure(Exception):
    """A storage problem, classified by the reason a condition will carry."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class Changed(StorageFailure):
    """A read pinned with IfMatch found another object (412): what was pinned is gone."""


class Stopped(Exception):
    """Hashing stopped because no one wants its answer any more (its caller gave up, its store
    closed): never a verdict on the artifact."""


class Stop:
    """When hashing in a worker thread ends early, checked before each chunk and member (and while
    a read stalls): at its deadline (Timeout), or once any of `events` is set (its caller gave up,
    or its store closed: a worker thread cannot be killed, and one left reading would hold the
    process's exit)."""

    def __init__(self, deadline: float = math.inf, *events: threading.Event) -> None:
        self.deadline, self.events = deadline, events

    def including(self, event: threading.Event) -> Stop:
        return self if event in self.events else Stop(self.deadline, *self.events, event)

    def check(self, location: Location) -> None:
        if any(event.is_set() for event in self.events):
            raise Stopped(f"verifying {location} was stopped before it finished")
        if time.monotonic() > self.deadline:
            raise StorageFailure(Reason.TIMEOUT, f"verifying {location} took longer than verification.timeoutSeconds")


def make_client(**overrides: Any) -> Any:
    # botocore retries connection errors and throttling itself (standard mode); what is
    # left after that surfaces as StorageUnavailable and is retried by the reconciler.
    config = Config(
        retries={"max_attempts": 3, "mode": "standard"},
        connect_timeout=5,
        read_timeout=60,
        max_pool_connections=32,
    )
    return boto3.session.Session().client("s3", config=config, **overrides)


def _failure(exc: Exception, location: Location | str, action: str) -> StorageFailure:
    failure = _classify(exc, location, action)
    # botocore puts the endpoint URL (credentials and all, when someone wrote them there) in its messages
    return type(failure)(failure.reason, redact(failure.message))


def _classify(exc: Exception, location: Location | str, action: str) -> StorageFailure:
    if isinstance(exc, StorageFailure):
        return exc
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
        if code in ("412", "PreconditionFailed") or status == "412":  # an IfMatch pin no longer holds
            return Changed(
                Reason.STORAGE_UNAVAILABLE, f"{location} changed while it was being verified ({action}); checked again"
            )
        if code in _NOT_FOUND or status == "404":
            return StorageFailure(Reason.NOT_FOUND, f"{location} does not exist ({action}: {code or status})")
        if code in _DENIED or status == "403":
            return StorageFailure(
                Reason.ACCESS_DENIED,
                f"access to {location} denied ({action}: {code or status}); check the storage credentials",
            )
        return StorageFailure(Reason.STORAGE_UNAVAILABLE, f"storage error on {action} of {location}: {code}")
    return StorageFailure(
        Reason.STORAGE_UNAVAILABLE, f"storage unreachable on {action} of {location}: {type(exc).__name__}: {exc}"
    )


def _pinned(etag: str | None, version_id: str | None = None) -> dict[str, str]:
    """Request arguments that hold a read to the object the HEAD saw: its ETag (412 once it is
    replaced) and, on a versioned bucket, its very VersionId. The ETag alone is an MD5: a colliding
    version put between the HEAD and the read would be hashed and recorded as the one proven."""
    return {
        **({"IfMatch": f'"{etag}"'} if etag else {}),
        **({"VersionId": v} if (v := pinned_version(version_id)) else {}),
    }


def _timestamp(value: Any) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value is not None else None


def _full_object_sha256(head: dict[str, Any]) -> str | None:
    """A SHA-256 checksum proves the whole object only if it is a full-object one. S3 computes SHA-256
    for a multipart upload (ETag `<md5>-<parts>`) only as a checksum of its parts' checksums, and
    some stores (moto) report that composite without its `-N` or a ChecksumType: never the digest."""
    value = head.get("ChecksumSHA256")
    multipart = "-" in str(head.get("ETag", ""))
    if not value or multipart or head.get("ChecksumType", "FULL_OBJECT") != "FULL_OBJECT" or "-" in value:
        return None
    return base64.b64decode(value).hex()


class ObjectStore:
    def __init__(
        self,
        client: Any,
        chunk_size: int = 1 << 20,
        queue_depth: int = 4,
        max_objects: int = 10_000,
        range_streams: int = 1,
    ) -> None:
        self.client = client
        self.range_streams = range_streams
        self.chunk_size = chunk_size
        self.queue_depth = queue_depth
        self.max_objects = max_objects
        self._pools: dict[str, ThreadPoolExecutor] = {}
        self._closed = threading.Event()

    def pool(self, purpose: str, size: int) -> ThreadPoolExecutor:
        """Threads of this store's own for `purpose`: a slow store holds only its own threads."""
        if purpose not in self._pools:
            self._pools[purpose] = ThreadPoolExecutor(size, thread_name_prefix=f"storage-{purpose}")
        return self._pools[purpose]

    def close(self) -> None:
        """Takes no more work, and its threads stop hashing at their next chunk (shutdown)."""
        self._closed.set()
        for pool in self._pools.values():
            pool.shutdown(wait=False, cancel_futures=True)

    def _call(self, location: Location | str, action: str, fn: Callable[..., Any], **kwargs: Any) -> Any:
        try:
            return fn(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise _failure(exc, location, action) from exc

    def head(self, location: Location, etag: str | None = None, version_id: str | None = None) -> StoredObject:
        """`etag`: only the object a listing saw (412 if it was replaced since); `version_id`: that version."""
        head = self._call(
            location,
            "HeadObject",
            self.client.head_object,
            Bucket=location.bucket,
            Key=location.key,
            ChecksumMode="ENABLED",
            **_pinned(etag, version_id),
        )
        return StoredObject(
            key=location.key,
            size=head["ContentLength"],
            etag=head["ETag"].strip('"'),
            version_id=head.get("VersionId"),
            sha256=_full_object_sha256(head),
            last_modified=_timestamp(head.get("LastModified")),
        )

    def snapshot(self, location: Location) -> Snapshot:
        """Metadata only: HEAD for an object, a listing for a directory."""
        if not location.is_directory:
            obj = self.head(location)
            return Snapshot(
                size=obj.size,
                etag=obj.etag,
                version_id=obj.version_id,
                members=(obj,),
                last_modified=obj.last_modified,
                sha256=obj.sha256,
            )
        members = []
        for item in self._list(location):
            if len(members) == self.max_objects:  # stop listing: memory stays bounded
                raise StorageFailure(
                    Reason.TOO_LARGE,
                    f"{location} holds more than {self.max_objects} objects (verification.maxDirectoryObjects)",
                )
            members.append(
                StoredObject(
                    key=item["Key"][len(location.key) :],
                    size=item["Size"],
                    etag=item["ETag"].strip('"'),
                    last_modified=_timestamp(item.get("LastModified")),
                    checksum_algorithms=tuple(item["ChecksumAlgorithm"]) if "ChecksumAlgorithm" in item else None,
                )
            )
        if not members:
            raise StorageFailure(Reason.NOT_FOUND, f"{location} holds no objects")
        return directory_snapshot(members)

    def _list(self, location: Location) -> Iterator[dict[str, Any]]:
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            # pages no larger than the bound: one page never holds more than is allowed
            pages = {"PageSize": min(1000, self.max_objects + 1)}
            for page in paginator.paginate(Bucket=location.bucket, Prefix=location.key, PaginationConfig=pages):
                yield from page.get("Contents", [])
        except (ClientError, BotoCoreError) as exc:
            raise _failure(exc, location, "ListObjectsV2") from exc

    def digest(
        self,
        location: Location,
        snapshot: Snapshot,
        timeout: float = math.inf,
        cancelled: threading.Event | None = None,
    ) -> tuple[str, str, int]:
        """(sha256 hex, method, body bytes read) of an artifact whose snapshot was just taken.

        Storage's own full-object checksum is used when present (no body byte read);
        a directory's digest is "S3Checksum" only if every member had one. After `timeout`
        seconds (counted from when this thread starts on it) it stops with Timeout; once
        `cancelled` is set, or the store closes, it stops too.
        """
        stop = Stop(time.monotonic() + timeout, self._closed, *([cancelled] if cancelled else []))
        if not location.is_directory:
            return self._member_digest(location, snapshot.members[0], headed=True, stop=stop)

        # Members are checked side by side (queue_depth at once), each streamed in one request:
        # a checkpoint of many files uses the endpoint's bandwidth, memory stays depth^2 chunks.
        def member_digest(member: StoredObject) -> tuple[str, str, str, int]:
            stop.check(location)
            member_location = Location(location.bucket, location.key + member.key)
            digest, method, read = self._member_digest(member_location, member, headed=False, stop=stop)
            return member.key, digest, method, read

        with ThreadPoolExecutor(self.queue_depth, thread_name_prefix="s3-member") as members:
            try:
                results = list(members.map(member_digest, snapshot.members))
            finally:
                members.shutdown(cancel_futures=True)
        entries = [(key, digest) for key, digest, _, _ in results]
        methods = {method for _, _, method, _ in results}
        read = sum(r for _, _, _, r in results)
        method = "S3Checksum" if methods == {"S3Checksum"} else "Stream"
        return directory_digest(entries), method, read

    def _member_digest(self, location: Location, obj: StoredObject, headed: bool, stop: Stop) -> tuple[str, str, int]:
        # Listings carry no checksum values, only (on S3 and most stores) their algorithms: a
        # directory member needs a HEAD of its own unless its listing rules out a SHA-256.
        # The HEAD is pinned to the member the listing saw: its checksum proves that object or none.
        checksum = obj.sha256 if headed or not obj.may_carry_sha256 else self.head(location, obj.etag).sha256
        if checksum:
            return checksum, "S3Checksum", 0
        if headed:  # a single object: ranged reads side by side
            digest, read = self.ranged_sha256(location, obj.size, obj.etag, stop, obj.version_id)
        else:  # a directory member: its siblings already run side by side
            digest, read = self.stream_sha256(location, obj.etag, stop, obj.version_id)
        return digest, "Stream", read

    def ranged_sha256(
        self,
        location: Location,
        size: int,
        etag: str | None = None,
        stop: Stop | None = None,
        version_id: str | None = None,
        sink: Callable[[bytes], None] | None = None,
    ) -> tuple[str, int]:
        """Hash an object with `range_streams` ranged GETs of `chunk_size` in flight, fed to the hash
        in order: one artifact can use more than one stream's bandwidth; memory stays about
        range_streams * chunk_size. IfMatch pins every range to the object the HEAD saw. Once
        stopped, ranges in flight are not waited for, but a stalled one still holds the process's
        exit for up to the read timeout (pool threads are joined at exit; off by default).
        `sink` gets the bytes in order as they are hashed (a fetch writes them)."""
        stop = (stop or Stop()).including(self._closed)
        stop.check(location)
        if size <= self.chunk_size or self.range_streams <= 1:
            return self.stream_sha256(location, etag, stop, version_id, sink)
        starts = iter(range(0, size, self.chunk_size))

        def fetch(start: int) -> bytes:
            response = self._call(
                location,
                "GetObject",
                self.client.get_object,
                Bucket=location.bucket,
                Key=location.key,
                Range=f"bytes={start}-{min(size, start + self.chunk_size) - 1}",
                **_pinned(etag, version_id),
            )
            try:
                return response["Body"].read()
            except (ClientError, BotoCoreError, OSError) as exc:
                raise _failure(exc, location, "GetObject") from exc

        digest, total = hashlib.sha256(), 0
        fetchers = ThreadPoolExecutor(self.range_streams, thread_name_prefix="s3-range")
        try:
            pending = collections.deque(
                fetchers.submit(fetch, start) for start in itertools.islice(starts, self.range_streams)
            )
            while pending:
                part = _when_done(pending.popleft(), stop, location)
                if (start := next(starts, None)) is not None:
                    pending.append(fetchers.submit(fetch, start))
                digest.update(part)
                if sink is not None:
                    sink(part)
                total += len(part)
                stop.check(location)
        finally:  # not waiting for ranges in flight: each ends with its read (bounded by the read timeout)
            fetchers.shutdown(wait=False, cancel_futures=True)
        if total != size:
            raise StorageFailure(Reason.STORAGE_UNAVAILABLE, f"{location}: read {total} of {size} bytes")
        return digest.hexdigest(), total

    def stream_sha256(
        self,
        location: Location,
        etag: str | None = None,
        stop: Stop | None = None,
        version_id: str | None = None,
        sink: Callable[[bytes], None] | None = None,
    ) -> tuple[str, int]:
        """Hash the object's bytes in bounded memory, downloading and hashing in parallel.

        A reader thread fills a small queue while this thread hashes (hashlib and socket
        reads both release the GIL), so memory is about queue_depth * chunk_size.
        IfMatch pins the exact object the HEAD saw: an overwrite mid-stream fails the read.
        """
        stop = (stop or Stop()).including(self._closed)
        stop.check(location)
        response = self._call(
            location,
            "GetObject",
            self.client.get_object,
            Bucket=location.bucket,
            Key=location.key,
            **_pinned(etag, version_id),
        )
        body = response["Body"]
        chunks: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=self.queue_depth)
        hashing_ended = threading.Event()

        def hand_over(item: bytes | BaseException | None) -> bool:
            while not hashing_ended.is_set():  # else no one will take it: the reader ends
                with contextlib.suppress(queue.Full):
                    chunks.put(item, timeout=0.1)
                    return True
            return False

        def read() -> None:
            try:
                while chunk := body.read(self.chunk_size):
                    if not hand_over(chunk):
                        return
                hand_over(None)
            except BaseException as exc:  # handed to the hashing thread, re-raised there
                hand_over(exc)
            finally:  # here, not by the hashing thread: closing waits for a read in progress
                body.close()

        # A daemon: one stuck in a stalled read never holds the process's exit.
        threading.Thread(target=read, name="s3-read", daemon=True).start()
        digest, total = hashlib.sha256(), 0
        try:
            while True:
                try:
                    item = chunks.get(timeout=0.1)
                except queue.Empty:  # a stalled read: still stoppable
                    stop.check(location)
                    continue
                if item is None:
                    break
                if isinstance(item, BaseException):
                    raise _failure(item, location, "GetObject") from item
                digest.update(item)
                if sink is not None:
                    sink(item)
                total += len(item)
                stop.check(location)
        finally:
            hashing_ended.set()
        return digest.hexdigest(), total


def _when_done(future: Future[T], stop: Stop, location: Location) -> T:
    """The future's result, still stoppable while it is not there (a stalled ranged read)."""
    while True:
        try:
            return future.result(timeout=0.1)
        except FutureTimeout:
            stop.check(location)


_MULTIPART = 64 * 1024 * 1024


def upload(client: Any, path: str, location: Location, progress: Callable[[int], None] | None = None) -> None:
    """Upload with a SHA-256 checksum, never over an existing object: single-part uploads (then
    verified without a download) are conditional (If-None-Match), so a key that appeared meanwhile
    is refused; multipart ones (their checksum is composite, so the operator streams them) go through
    boto3's transfer manager, which takes no condition: `stored_already` checked the key just before."""
    from boto3.s3.transfer import TransferConfig

    size = os.path.getsize(path)
    try:
        if size < _MULTIPART:
            with open(path, "rb") as body:
                client.put_object(
                    Bucket=location.bucket, Key=location.key, Body=body, ChecksumAlgorithm="SHA256", IfNoneMatch="*"
                )
            if progress is not None:
                progress(size)
            return
        config = TransferConfig(multipart_threshold=_MULTIPART, multipart_chunksize=_MULTIPART)
        client.upload_file(
            path,
            location.bucket,
            location.key,
            ExtraArgs={"ChecksumAlgorithm": "SHA256"},
            Config=config,
            Callback=progress,
        )
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412"):
            raise StorageFailure(
                Reason.CHECKSUM_MISMATCH, f"{location} was written by someone else meanwhile: nothing overwritten"
            ) from exc
        raise _failure(exc, location, "PutObject") from exc
    except BotoCoreError as exc:
        raise _failure(exc, location, "PutObject") from exc
    except Exception as exc:  # s3transfer wraps client errors in its own exceptions
        raise StorageFailure(Reason.STORAGE_UNAVAILABLE, redact(f"upload to {location} failed: {exc}")) from exc


def stored_already(client: Any, location: Location, sha256: str) -> bool:
    """Does `location` already hold exactly these bytes? False when nothing is there; a failure
    when other bytes are (an upload must never replace what a ModelVersion may name)."""
    store = ObjectStore(client)
    try:
        found = store.head(location)
    except StorageFailure as failure:
        if failure.reason is Reason.NOT_FOUND:
            return False
        raise
    digest = found.sha256 or store.stream_sha256(location, found.etag)[0]
    if digest == sha256:
        return True
    raise StorageFailure(
        Reason.CHECKSUM_MISMATCH,
        f"{location} already holds other bytes (sha256 {digest}): nothing uploaded; choose another --to",
    )


def storage_digest(client: Any, location: Location) -> tuple[str, int]:
    """(sha256, size) of an object or prefix/ as it is in storage: from its full-object checksum
    where storage has one, else streamed (a directory: the manifest digest of its members)."""
    store = ObjectStore(client, max_objects=100_000)
    try:
        snapshot = store.snapshot(location)
        digest, _, _ = store.digest(location, snapshot)
    finally:
        store.close()
    return digest, snapshot.size
