"""Who may run: one active replica holds a Lease; another takes it when it is not renewed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class LeaseState:
    holder: str | None
    renewed: datetime | None
    duration_seconds: float


def may_hold(lease: LeaseState | None, me: str, now: datetime) -> bool:
    """No lease, a released one (no holder), our own, or one its holder stopped renewing."""
    if lease is None or not lease.holder or lease.holder == me or lease.renewed is None:
        return True
    return (now - lease.renewed).total_seconds() > lease.duration_seconds
