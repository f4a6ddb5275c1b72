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
from typing import Any

VERSION_PREFIX = "v1."


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


class Sealer:
    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("a seal key needs at least 16 bytes")
        self._key = key

    def seal(self, purpose: str, *parts: Any) -> str:
        mac = hmac.new(self._key, canonical([purpose, *parts]), hashlib.sha256).digest()
        return VERSION_PREFIX + base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def verifies(self, seal: Any, purpose: str, *parts: Any) -> bool:
        # As bytes: compare_digest refuses non-ASCII str, and a seal is user-writable input.
        return isinstance(seal, str) and hmac.compare_digest(seal.encode(), self.seal(purpose, *parts).encode())

    def __repr__(self) -> str:  # never show the key
        return "Sealer(<key hidden>)"
