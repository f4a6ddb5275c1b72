#!/usr/bin/env python3
"""A modelreg notification receiver: verifies each delivery's signature (the README's recipe), drops
repeats by `webhook-id` (delivery is at least once), and prints one JSON line per event.

    MODELREG_WEBHOOK_SECRET=whsec_... python3 receiver.py --port 8080

Standard library only. Answers 204 to a verified event (also to a repeat), 401 to a bad signature
(modelreg does not retry a 4xx), so a tampered or forged request is refused and never printed.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOLERANCE_SECONDS = 300  # a replayed request older (or newer) than this is refused
MAX_BODY = 1024 * 1024  # modelreg's events are a few KiB


class InvalidSignature(Exception):
    pass


def verify(secret: str, headers: Mapping[str, str], body: bytes, now: float | None = None) -> dict[str, Any]:
    """The recipe: HMAC-SHA256 with the base64-decoded key (after `whsec_`) over
    "<webhook-id>.<webhook-timestamp>.<body>", base64, compared in constant time with each
    `v1,<signature>` of `webhook-signature`; the timestamp within 5 minutes of now."""
    headers = {k.lower(): v for k, v in headers.items()}
    id_, timestamp, signatures = (headers.get(h) for h in ("webhook-id", "webhook-timestamp", "webhook-signature"))
    if not (id_ and timestamp and signatures):
        raise InvalidSignature("missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        age = abs((time.time() if now is None else now) - int(timestamp))
    except ValueError:
        raise InvalidSignature("webhook-timestamp is not a number") from None
    if age > TOLERANCE_SECONDS:
        raise InvalidSignature("webhook-timestamp is too far from now")
    key = base64.b64decode(secret.removeprefix("whsec_"))
    expected = base64.b64encode(hmac.new(key, f"{id_}.{timestamp}.".encode() + body, hashlib.sha256).digest())
    for candidate in signatures.split():
        version, _, signature = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(signature.encode(), expected):
            return json.loads(body)
    raise InvalidSignature("no matching v1 signature")


def make_server(
    secret: str,
    port: int,
    on_event: Callable[[dict[str, Any]], None],
    host: str = "127.0.0.1",
    on_repeat: Callable[[dict[str, Any]], None] = lambda event: None,
) -> ThreadingHTTPServer:
    """An HTTP server (call serve_forever) that hands each verified, first-seen event to on_event
    (and a repeat of one already seen to on_repeat)."""
    seen: dict[str, float] = {}  # id -> when first handled
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = self.headers.get("content-length", "")
            if not length.isdigit() or int(length) > MAX_BODY:  # before reading a byte of it
                self.send_response(413)
                self.end_headers()
                return
            body = self.rfile.read(int(length))
            try:
                event = verify(secret, dict(self.headers), body)
            except (InvalidSignature, ValueError) as exc:
                self.send_response(401)
                self.end_headers()
                self.wfile.write(str(exc).encode())
                return
            with lock:
                first = event["id"] not in seen
            if first:
                on_event(event)  # if this raises, the sender retries and the event is not lost
                with lock:
                    seen[event["id"]] = time.time()
                    for old in [i for i, at in seen.items() if at < time.time() - 2 * TOLERANCE_SECONDS]:
                        del seen[old]  # older than any timestamp verify() accepts: cannot come back
            else:
                on_repeat(event)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:  # one JSON line per event is the output
            pass

    return ThreadingHTTPServer((host, port), Handler)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--host", default="0.0.0.0")
    args = parser.parse_args()
    secret = os.environ.get("MODELREG_WEBHOOK_SECRET")
    if not secret:
        sys.exit("set MODELREG_WEBHOOK_SECRET to the endpoint's signing key (whsec_...)")
    server = make_server(secret, args.port, lambda event: print(json.dumps(event), flush=True), args.host)
    print(f"listening on {args.host}:{args.port}", file=sys.stderr)
    server.serve_forever()


if __name__ == "__main__":
    main()
