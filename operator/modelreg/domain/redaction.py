"""Secrets out of every message: credentials inside URLs, and anything that looks like a key."""

from __future__ import annotations

import re

# userinfo is everything up to the last "@" of the URL (a password may hold "/" or ":")
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^\s\"'<>]*@")
_KEY_VALUES = re.compile(
    r"(?i)(?P<name>aws_secret_access_key|secret_access_key|aws_session_token|session_token|password|token)"
    r"(?P<sep>[\"']?\s*[=:]\s*[\"']?)[^\s\"',;]+"
)


def redact(text: str) -> str:
    """`http://user:secret@host` -> `http://***@host`; `password=x` -> `password=***`."""
    text = _URL_CREDENTIALS.sub(lambda m: f"{m['scheme']}***@", text)
    return _KEY_VALUES.sub(lambda m: f"{m['name']}{m['sep']}***", text)
