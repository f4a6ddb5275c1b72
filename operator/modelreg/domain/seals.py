"""Seals: HMAC-SHA256 over canonical JSON, keyed by a Secret only the operator holds.

A seal proves that the operator (or its admission webhook) wrote or admitted exactly these
values for exactly this object. Anyone can copy a seal, nobody can forge one, and a copy
verifies only for the very parts it was made over (uids and digests included).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Sequence
from typing import Any

VERSION_PREFIX = "v1."


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


class Sealer:
    """Seals with `key`; also accepts seals made with `previous` keys, so a key can be rotated
    without voiding the approvals and status sealed before (drop the old key once re-sealed)."""

    def __init__(self, key: bytes, previous: Sequence[bytes] = ()) -> None:
        if any(len(k) < 16 for k in (key, *previous)):
            raise ValueError("a seal key needs at least 16 bytes")
        self._keys = (key, *previous)

    def seal(self, purpose: str, *parts: Any, key: bytes | None = None) -> str:
        mac = hmac.new(key or self._keys[0], canonical([purpose, *parts]), hashlib.sha256).digest()
        return VERSION_PREFIX + base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def verifies(self, seal: Any, purpose: str, *parts: Any) -> bool:
        # As bytes: compare_digest refuses non-ASCII str, and a seal is user-writable input.
        if not isinstance(seal, str):
            return False
        return any(
            hmac.compare_digest(seal.encode(), self.seal(purpose, *parts, key=key).encode()) for key in self._keys
        )

    def __repr__(self) -> str:  # never show the key
        return "Sealer(<key hidden>)"
