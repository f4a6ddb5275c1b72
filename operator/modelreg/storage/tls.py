"""The webhook's TLS material: files from a Secret (cert-manager), or self-signed at start-up.

kopf's own self-signed path needs oscrypto, which cannot parse OpenSSL 3's version string on
current distributions; `cryptography` makes the same CA + server certificate here.
"""

from __future__ import annotations

import asyncio.sslproto
import datetime
import ipaddress
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

# asyncio gives every TLS connection a read buffer of SSLProtocol.max_size (256 KiB) for its
# lifetime; the operator keeps one connection per watch (two per watched namespace) and a pool, so
# at 50 namespaces that was 38 MiB of its RSS. A TLS record carries at most 16 KiB, so 32 KiB
# reads no less per call in practice (docs/performance.md: RSS and throughput measured).
TLS_READ_BUFFER_BYTES = 32 * 1024


def trim_tls_read_buffers() -> None:
    """Smaller read buffers for TLS connections made from now on (client and server side)."""
    asyncio.sslproto.SSLProtocol.max_size = TLS_READ_BUFFER_BYTES


@dataclass(frozen=True)
class TlsFiles:
    cert_file: str
    key_file: str
    ca_file: str


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _san(hostname: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(hostname))
    except ValueError:
        return x509.DNSName(hostname)


_CA_USAGE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=True,
    crl_sign=True,
    encipher_only=False,
    decipher_only=False,
)


def self_signed(hostnames: list[str], days: int = 365) -> TlsFiles:
    """A throw-away CA and a server certificate for `hostnames`, in a private temp directory."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("modelreg webhook CA"))
        .issuer_name(_name("modelreg webhook CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        # what strict verification (Python 3.13's default, VERIFY_X509_STRICT) requires of a CA
        .add_extension(_CA_USAGE, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names = list(dict.fromkeys(hostnames))
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(names[0]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([_san(n) for n in names]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    folder = Path(tempfile.mkdtemp(prefix="modelreg-webhook-"))  # mode 0700
    files = TlsFiles(str(folder / "tls.crt"), str(folder / "tls.key"), str(folder / "ca.crt"))
    Path(files.cert_file).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    Path(files.ca_file).write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    key_path = Path(files.key_file)
    key_path.touch(mode=0o600)
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return files


def read_seal_key(path: str) -> bytes:
    """The seal key's bytes (surrounding whitespace dropped: `kubectl create secret` keeps a newline)."""
    return Path(path).read_bytes().strip()
