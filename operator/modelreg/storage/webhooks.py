"""Signed HTTP deliveries to notification endpoints (Standard Webhooks)."""

from __future__ import annotations

from datetime import UTC, datetime

import aiohttp
import standardwebhooks


def signed_headers(secret: str, id_: str, body: str, now: datetime | None = None) -> dict[str, str]:
    """`webhook-id`, `webhook-timestamp` (now: every attempt is signed afresh) and
    `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`."""
    now = now or datetime.now(UTC)
    return {
        "content-type": "application/json",
        "webhook-id": id_,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": standardwebhooks.Webhook(secret).sign(id_, now, body),
    }


def valid_secret(secret: str) -> bool:
    try:
        standardwebhooks.Webhook(secret)
    except Exception:
        return False
    return True


class Sender:
    """One HTTP session for all endpoints; redirects are not followed (a receiver answers itself)."""

    def __init__(self, timeout: float) -> None:
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def post(self, url: str, headers: dict[str, str], body: str) -> int | None:
        """The receiver's HTTP status, or None when none came (refused, reset, timed out)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        try:
            async with self._session.post(url, data=body.encode(), headers=headers, allow_redirects=False) as reply:
                await reply.content.read(4096)  # the status is the answer; a huge body is not read
                return reply.status
        except (TimeoutError, aiohttp.ClientError, OSError):
            return None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
