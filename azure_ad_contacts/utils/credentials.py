"""The MSP's app credential as MSAL takes it (plain Python, no Odoo): a client secret, or a
certificate with its private key, read from PEM and checked before anyone relies on it."""

import datetime
import re
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa

# Microsoft signs client assertions of certificates with RSA (PS256, RS256 for the SHA-1
# thumbprint); Entra refuses RSA keys shorter than this (AADSTS50032, WeakRsaKey).
MIN_RSA_BITS = 2048
_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----", re.DOTALL)
_KEY_TYPES = (b"PRIVATE KEY", b"RSA PRIVATE KEY")


class CertificateInputError(ValueError):
    """What is wrong with a certificate given as PEM: `reason` is one of encrypted_key,
    no_key, several_keys, no_certificate, unreadable_key, not_rsa, weak_key,
    unreadable_certificate, no_matching_certificate (the settings word each for the
    administrator); `detail` what the parser said, if anything."""

    def __init__(self, reason, detail=""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class AppCertificate:
    """A certificate of the app registration with its private key, as MSAL signs with it."""

    private_key_pem: str
    certificate_pem: str
    thumbprint: str  # SHA-1, hex, upper case: what the Azure portal shows
    sha256_thumbprint: str
    not_before: datetime.datetime  # naive, UTC
    not_after: datetime.datetime  # naive, UTC
    subject: str

    @property
    def msal_credential(self):
        """MSAL's client_credential: with the certificate, MSAL signs the client assertion
        with PS256 and names the certificate by its SHA-256 thumbprint (x5t#S256), as
        Microsoft recommends."""
        return {"private_key": self.private_key_pem, "public_certificate": self.certificate_pem}

    def expired(self, now=None):
        return (now or _utcnow()) >= self.not_after


def load_certificate(pem):
    """The AppCertificate of PEM text holding one private key (unencrypted, RSA) and the
    certificate that belongs to it (other certificates, e.g. of its chain, may follow).
    Raises CertificateInputError saying what is missing or wrong."""
    data = pem.encode() if isinstance(pem, str) else bytes(pem or b"")
    blocks = [(match[1], match[0]) for match in _PEM_BLOCK.finditer(data)]
    # PKCS#8 "ENCRYPTED PRIVATE KEY", or a PKCS#1 key with a "Proc-Type: 4,ENCRYPTED" header.
    if any(kind == b"ENCRYPTED PRIVATE KEY" or (kind in _KEY_TYPES and b"ENCRYPTED" in block)
           for kind, block in blocks):
        raise CertificateInputError("encrypted_key")
    keys = [block for kind, block in blocks if kind in _KEY_TYPES]
    certificates = [block for kind, block in blocks if kind == b"CERTIFICATE"]
    if len(keys) != 1:
        raise CertificateInputError("several_keys" if keys else "no_key")
    if not certificates:
        raise CertificateInputError("no_certificate")
    try:
        key = serialization.load_pem_private_key(keys[0], password=None)
    except (ValueError, TypeError) as exc:
        raise CertificateInputError("unreadable_key", str(exc)) from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise CertificateInputError("not_rsa")
    if key.key_size < MIN_RSA_BITS:
        raise CertificateInputError("weak_key", str(key.key_size))
    public = _public_bytes(key.public_key())
    for block in certificates:
        try:
            certificate = x509.load_pem_x509_certificate(block)
        except ValueError as exc:
            raise CertificateInputError("unreadable_certificate", str(exc)) from exc
        if _public_bytes(certificate.public_key()) == public:
            return _app_certificate(key, certificate)
    raise CertificateInputError("no_matching_certificate")


def _app_certificate(key, certificate):
    return AppCertificate(
        private_key_pem=key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode(),
        certificate_pem=certificate.public_bytes(serialization.Encoding.PEM).decode(),
        thumbprint=certificate.fingerprint(hashes.SHA1()).hex().upper(),
        sha256_thumbprint=certificate.fingerprint(hashes.SHA256()).hex().upper(),
        not_before=_utc(certificate, "not_valid_before"),
        not_after=_utc(certificate, "not_valid_after"),
        subject=certificate.subject.rfc4514_string(),
    )


def _utc(certificate, name):
    """A validity date of the certificate, naive in UTC, whichever cryptography release."""
    aware = getattr(certificate, f"{name}_utc", None)  # cryptography 42+
    value = aware if aware is not None else getattr(certificate, name)
    return value.replace(tzinfo=None)


def _utcnow():
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def _public_bytes(public_key):
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
