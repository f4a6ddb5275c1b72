"""The local server's gatekeeping, as pure decisions: a server acting with the user's credentials
is a target (as `kubectl proxy` and Jupyter are).

- only requests whose Host is the server's own address (a DNS-rebinding page sends its own name);
- a per-run secret token, given once in the URL the CLI prints and opens, then an HttpOnly
  SameSite=Strict cookie (another local user, or a web page, does not have it);
- every state change is a POST carrying a CSRF token (a form on another site cannot read it), from
  no foreign Origin;
- no CORS headers ever: a cross-origin script can neither read an answer nor pre-flight a write.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from dataclasses import dataclass, field
from http.cookies import CookieError, SimpleCookie

# Sent with every answer: scripts and styles only from the server itself, no framing, no referrer
# beyond the server itself (`no-referrer` would make the browser send `Origin: null` on its own
# POSTs; the token leaves the URL at the first redirect anyway), nothing cached.
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
    "Cross-Origin-Resource-Policy": "same-origin",
}


def is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return address == "localhost"


def _host_names(address: str, port: int) -> set[str]:
    literal = f"[{address}]" if ":" in address else address
    names = {f"{literal}:{port}".lower()}
    if is_loopback(address):
        names.add(f"localhost:{port}")
    return names


@dataclass(frozen=True)
class Gate:
    address: str
    port: int
    token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))

    @property
    def cookie_name(self) -> str:
        return f"modelreg-ui-{self.port}"

    @property
    def origin(self) -> str:
        literal = f"[{self.address}]" if ":" in self.address else self.address
        return f"http://{literal}:{self.port}"

    def url(self) -> str:
        return f"{self.origin}/?token={self.token}"

    def host_allowed(self, host: str | None) -> bool:
        return bool(host) and host.strip().lower() in _host_names(self.address, self.port)  # type: ignore[union-attr]

    def token_valid(self, given: str | None) -> bool:
        return bool(given) and hmac.compare_digest(given.encode(), self.token.encode())  # type: ignore[union-attr]

    def cookie_token(self, cookie_header: str | None) -> str | None:
        try:
            morsel = SimpleCookie(cookie_header or "").get(self.cookie_name)
        except CookieError:
            return None
        return morsel.value if morsel is not None else None

    def set_cookie(self) -> str:
        return f"{self.cookie_name}={self.token}; HttpOnly; SameSite=Strict; Path=/"

    def csrf_valid(self, given: str | None) -> bool:
        return bool(given) and hmac.compare_digest(given.encode(), self.csrf.encode())  # type: ignore[union-attr]

    def origin_allowed(self, origin: str | None, fetch_site: str | None) -> bool:
        """A POST from the page itself: no foreign Origin, and no cross-site Sec-Fetch-Site."""
        if fetch_site and fetch_site not in ("same-origin", "none"):
            return False
        if origin is None:
            return True
        literal_hosts = {f"http://{name}" for name in _host_names(self.address, self.port)}
        return origin.lower() in literal_hosts
