"""Local files: hashing what is about to be registered."""

from __future__ import annotations

import hashlib
from pathlib import Path

_CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def directory_files(root: Path) -> list[tuple[str, Path]]:
    """(relative key with forward slashes, path) for every regular file, sorted by key."""
    return sorted((p.relative_to(root).as_posix(), p) for p in root.rglob("*") if p.is_file())
