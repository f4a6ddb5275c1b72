"""The one shape of "something changed" for both kinds (and the Deployments they roll)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Transition:
    """Told as a Kubernetes Event (unless `event` is False), an audit line when something moved
    from `previous` to `current`, and a notification of type `notice`, if any."""

    type: str  # Normal or Warning
    reason: str
    message: str
    previous: str | None
    current: str | None
    notice: str | None = None
    event: bool = True
