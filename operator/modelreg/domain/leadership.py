"""Who may run: one active replica holds a Lease; another takes it when it is not renewed."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LeaseState:
    holder: str | None
    # How long this replica has seen the lease unchanged (its own monotonic clock, never the holder's
    # wall clock: a standby whose clock runs ahead must not take over early).
    unchanged_seconds: float
    duration_seconds: float


def may_hold(lease: LeaseState | None, me: str) -> bool:
    """No lease, a released one (no holder), our own, or one its holder stopped renewing."""
    if lease is None or not lease.holder or lease.holder == me:
        return True
    return lease.unchanged_seconds > lease.duration_seconds


def must_stop(seconds_since_last_renewal_began: float, lease_seconds: float, retry_seconds: float) -> bool:
    """The holder stops before a standby may take over: one retry (and a call's time) early."""
    return seconds_since_last_renewal_began > lease_seconds - retry_seconds
