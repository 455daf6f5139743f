"""Self-signed certificates so that MSAL and ``requests`` can reach the fake over real HTTPS.

``ensure_certs(directory)`` creates a small private CA and a server certificate for
``127.0.0.1``/``localhost`` signed by it, and reuses them on later calls while they stay valid
for more than 30 days. ``bundle_file`` is certifi's CA bundle plus our CA, so a process can set
``REQUESTS_CA_BUNDLE=<bundle_file>`` and still trust every public site.

Several processes (test run, demo server, Odoo) may share one directory: creation is serialised
with an advisory file lock and every file is written atomically.
"""

import datetime
import fcntl
import ipaddress
import os
from contextlib import contextmanager
from typing import NamedTuple

from cryptography import x509
from cryptography.hazmat.backends import default_backend
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# datetime.UTC needs Python 3.11 and the project still targets 3.10.
UTC = datetime.timezone(datetime.timedelta(0))
MIN_REMAINING_VALIDITY = datetime.timedelta(days=30)
VALIDITY = datetime.timedelta(days=825)


class CertPaths(NamedTuple):
    ca_file: str
    cert_file: str
    key_file: str
    bundle_file: str


def ensure_certs(directory):
    """Return the certificate paths in ``directory``, creating or renewing them when needed."""
    directory = os.path.abspath(directory)
    os.makedirs(directory, exist_ok=True)
    paths = CertPaths(
        ca_file=os.path.join(directory, "fake-entra-ca.pem"),
        cert_file=os.path.join(directory, "fake-entra-server.pem"),
        key_file=os.path.join(directory, "fake-entra-server.key"),
        bundle_file=os.path.join(directory, "fake-entra-bundle.pem"),
    )
    with _locked(os.path.join(directory, ".lock")):
        if not _still_valid(paths):
            _create(paths)
        with open(paths.ca_file, "rb") as ca:
            ca_pem = ca.read()
        bundle = _public_bundle() + b"\n# fake_entra local CA\n" + ca_pem
        if _read(paths.bundle_file) != bundle:
            _write_atomic(paths.bundle_file, bundle)
    return paths


@contextmanager
def _locked(lock_path):
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _read(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def _write_atomic(path, data, mode=0o644):
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _public_bundle():
    try:
        import certifi
    except ImportError:
        return b""
    with open(certifi.where(), "rb") as f:
        return f.read()


def _still_valid(paths):
    """True when CA, server cert and key exist, belong together and outlive the margin."""
    backend = default_backend()
    try:
        ca = x509.load_pem_x509_certificate(_read(paths.ca_file), backend)
        cert = x509.load_pem_x509_certificate(_read(paths.cert_file), backend)
        key = serialization.load_pem_private_key(_read(paths.key_file), None, backend)
    except (TypeError, ValueError):  # missing (None) or unreadable files
        return False
    # cryptography 3.4 returns naive datetimes in UTC.
    deadline = (datetime.datetime.now(UTC) + MIN_REMAINING_VALIDITY).replace(tzinfo=None)
    return (
        ca.not_valid_after > deadline
        and cert.not_valid_after > deadline
        and cert.issuer == ca.subject
        and _public_bytes(key.public_key()) == _public_bytes(cert.public_key())
    )


def _public_bytes(public_key):
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _create(paths):
    backend = default_backend()
    now = datetime.datetime.now(UTC) - datetime.timedelta(minutes=5)  # tolerate clock skew
    ca_key = ec.generate_private_key(ec.SECP256R1(), backend)
    ca_name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fake_entra"),
        x509.NameAttribute(NameOID.COMMON_NAME, f"fake_entra local CA {now:%Y%m%d%H%M%S}"),
    ])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256(), backend)
    )
    key = ec.generate_private_key(ec.SECP256R1(), backend)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(
            x509.SubjectAlternativeName([
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                x509.DNSName("localhost"),
            ]),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256(), backend)
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # Key first: _still_valid() rejects a cert whose key does not match, so a crash midway
    # only causes a regeneration next time.
    _write_atomic(paths.key_file, key_pem, mode=0o600)
    _write_atomic(paths.ca_file, ca_cert.public_bytes(serialization.Encoding.PEM))
    _write_atomic(paths.cert_file, cert.public_bytes(serialization.Encoding.PEM))


def _key_usage(cert_sign):
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,  # EC keys sign the TLS handshake, they never encipher
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )
