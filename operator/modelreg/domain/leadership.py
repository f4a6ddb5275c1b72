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


def must_stop(seconds_since_last_renewal_began: float, renew_deadline_seconds: float) -> bool:
    """The holder stops once it could not renew within the renew deadline (client-go's
    renewDeadline), which is shorter than the lease: a standby may take over only after the lease,
    counted from when it saw the last renewal, which began no earlier than the holder's count."""
    return seconds_since_last_renewal_began > renew_deadline_seconds


def renewal_timeout(seconds_since_last_renewal_began: float, renew_deadline_seconds: float) -> float:
    """What is left for one renewal call: never past the deadline (0 when it passed)."""
    return max(0.0, renew_deadline_seconds - seconds_since_last_renewal_began)


def overran(seconds_since_last_renewal_began: float, lease_seconds: float, retry_seconds: float) -> bool:
    """Still running this close to the lease's end (a stop that hangs): exit hard, or two would serve."""
    return seconds_since_last_renewal_began > lease_seconds - min(retry_seconds, lease_seconds / 4)
