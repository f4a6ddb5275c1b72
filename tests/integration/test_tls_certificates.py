"""The self-signed CA and server certificate (the webhook's in self-signed mode, the sandbox's API
server) pass strict X.509 verification, Python 3.13's default: without key identifiers and key
usage, `kubectl modelreg` on 3.13 could not reach the sandbox (SSLCertVerificationError)."""

from __future__ import annotations

import socket
import ssl
import threading

from modelreg.storage.tls import self_signed


def test_a_strict_client_verifies_the_self_signed_chain():
    files = self_signed(["127.0.0.1", "localhost"])
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(files.cert_file, files.key_file)
    client_context = ssl.create_default_context(cafile=files.ca_file)
    client_context.verify_flags |= ssl.VERIFY_X509_STRICT | ssl.VERIFY_X509_PARTIAL_CHAIN  # 3.13's defaults
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def serve() -> None:
            connection, _ = listener.accept()
            try:
                with server_context.wrap_socket(connection, server_side=True) as tls:
                    tls.recv(1)
            except (ssl.SSLError, OSError):
                pass  # the client's refusal shows on its side

        threading.Thread(target=serve, daemon=True).start()
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            client_context.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            assert tls.version() is not None  # the handshake, certificate checks included, succeeded
            tls.sendall(b"x")
