"""Fetching a proven artifact into a local directory (`modelreg fetch`).

Every read is pinned (the VersionId proven, else the ETag proven or seen, with IfMatch), the bytes
are hashed as they are written into a fresh directory beside the target, and only once their
SHA-256 (a directory's manifest digest) equals the proven one is that directory renamed to the
target. Any failure removes it: nothing unproven ever appears at the target.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from modelreg.domain.artifacts import Location, StoredObject, directory_digest, parse_uri
from modelreg.domain.consumption import Member, Pinned, UnsafeKey, member_paths
from modelreg.storage.s3 import Changed, ObjectStore, StorageFailure, make_client

# One object is read in CHUNK-sized ranges, RANGE_STREAMS at a time: memory stays about
# RANGE_STREAMS * CHUNK (measured in benchmarks/fetch_memory.py), whatever the object's size.
CHUNK = 8 << 20
RANGE_STREAMS = 4


class FetchFailure(Exception):
    """A one-line reason why nothing was put at the target."""


@dataclass(frozen=True)
class Fetched:
    path: Path
    sha256: str
    files: int
    size: int


Progress = Callable[[int], None]


def make_store() -> ObjectStore:
    return ObjectStore(make_client(), chunk_size=CHUNK, range_streams=RANGE_STREAMS)


def check_target(target: Path, replace: bool = False) -> None:
    """Refuse a target that a fetch could not safely (re)place, before any byte is read."""
    if target.is_symlink():
        raise FetchFailure(f"{target} is a symbolic link: fetch never writes through one")
    if not target.parent.is_dir():
        raise FetchFailure(f"{target.parent} is not a directory")
    if not target.exists():
        return
    if not target.is_dir():
        raise FetchFailure(f"{target} exists and is not a directory")
    if os.path.ismount(target):  # an emptyDir's mount point cannot be renamed onto
        raise FetchFailure(f"{target} is a mount point: fetch into a directory inside it (e.g. {target}/model)")
    if not replace and any(target.iterdir()):
        raise FetchFailure(f"{target} exists and is not empty (--replace swaps it once the new bytes are proven)")


def fetch(
    pinned: Pinned,
    target: Path,
    store: ObjectStore | None = None,
    progress: Progress | None = None,
    started: Callable[[int], None] | None = None,
    replace: bool = False,
) -> Fetched:
    """Put the artifact `pinned` names at `target` (a directory), proven, or raise FetchFailure /
    StorageFailure leaving `target` as it was. `started(total_bytes)` is called once the size is known."""
    target = Path(os.path.abspath(target))
    check_target(target, replace)
    location = parse_uri(pinned.uri)
    store = store or make_store()
    try:
        # Everything is listed (or HEADed) and every key judged before anything is written.
        if location.is_directory:
            snapshot = store.snapshot(location)
            objects: list[StoredObject] = list(snapshot.members)
            members = member_paths([o.key for o in objects])
            for obj, member in zip(objects, members, strict=True):
                if member.directory and obj.size:
                    raise FetchFailure(f"{location}{obj.key} names a directory but holds {obj.size} bytes")
        else:
            obj = store.head(location, pinned.etag, pinned.version_id)
            if pinned.size_bytes is not None and obj.size != pinned.size_bytes:
                raise FetchFailure(
                    f"{location} holds {obj.size} bytes, not the {pinned.size_bytes} proven: nothing was written"
                )
            objects, members = [obj], member_paths([location.key.rsplit("/", 1)[-1]])
        total = sum(o.size for o in objects)
        if started is not None:
            started(total)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.fetch-", dir=target.parent))
        try:
            entries = []
            for obj, member in zip(objects, members, strict=True):
                if member.directory:
                    _directories(staging, member.parts)
                    entries.append((member.key, _EMPTY_SHA256))
                    continue
                source = Location(location.bucket, location.key + obj.key) if location.is_directory else location
                # a directory member is held to the object its listing saw; a single object to the
                # version proven (or, without one, the ETag proven or just seen)
                etag = obj.etag if location.is_directory else (pinned.etag or obj.etag)
                version_id = None if location.is_directory else pinned.version_id
                entries.append(
                    (member.key, _write(store, source, obj.size, etag, version_id, staging, member, progress))
                )
            found = directory_digest(entries) if location.is_directory else entries[0][1]
            if found != pinned.sha256:
                raise FetchFailure(
                    f"sha256 mismatch for {location}: expected {pinned.sha256} (proven), got {found}: "
                    f"nothing was written to {target}"
                )
            os.chmod(staging, 0o755)  # mkdtemp's 0700 would hide it from a serving container's other user
            _into_place(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    except UnsafeKey as exc:
        raise FetchFailure(str(exc)) from None
    except Changed as exc:
        raise FetchFailure(
            f"{location} is no longer the object that was proven (overwritten since): nothing was written to {target}"
        ) from exc
    except StorageFailure as exc:
        raise FetchFailure(f"{exc.message}: nothing was written to {target}") from exc
    except OSError as exc:  # disk full, permissions: the local side's own one line
        raise FetchFailure(
            f"{exc.strerror or exc} ({exc.filename or target}): nothing was written to {target}"
        ) from exc
    return Fetched(target, found, sum(1 for m in members if not m.directory), total)


_EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def _directories(root: Path, parts: tuple[str, ...]) -> Path:
    """Make root/parts... one level at a time, never through a symbolic link."""
    path = root
    for part in parts:
        path = path / part
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, 0o755)
        if not stat.S_ISDIR(os.lstat(path).st_mode):
            raise FetchFailure(f"{path.relative_to(root)} is not a directory: nothing was written")
    return path


def _write(
    store: ObjectStore,
    location: Location,
    size: int,
    etag: str | None,
    version_id: str | None,
    root: Path,
    member: Member,
    progress: Progress | None,
) -> str:
    parent = _directories(root, member.parts[:-1])
    path = parent / member.parts[-1]
    # O_EXCL | O_NOFOLLOW: a name that already exists (or is a link) is never written through
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        if exc.errno in (errno.EEXIST, errno.ELOOP):
            raise FetchFailure(f"{member.key!r} names a file twice: nothing was written") from exc
        raise
    with os.fdopen(fd, "wb", buffering=0) as out:

        def sink(data: bytes) -> None:
            out.write(data)
            if progress is not None:
                progress(len(data))

        digest, _ = store.ranged_sha256(location, size, etag, sink=sink, version_id=version_id)
        os.fsync(out.fileno())  # proven bytes are on disk before their name appears
    return digest


def _into_place(staging: Path, target: Path) -> None:
    if target.exists() and any(target.iterdir()):  # --replace: the old one goes only now
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        os.rename(target, old / "previous")
        os.rename(staging, target)
        shutil.rmtree(old)  # never follows symbolic links
        return
    os.rename(staging, target)  # onto an empty directory, or none
