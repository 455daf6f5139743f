"""Certificates of an app registration for tests: a self-signed certificate and its private key,
as an MSP makes them with openssl and uploads the public part to the Azure portal."""

import datetime
from typing import NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID


class AppCertificatePem(NamedTuple):
    key: str  # the private key, PEM (PKCS#8)
    certificate: str  # the certificate, PEM: what is uploaded to the app registration

    @property
    def both(self):
        """Key and certificate in one PEM text, as the settings take them."""
        return self.key + self.certificate


def make_app_certificate(valid_days=365, starts_days=-1, key_size=2048, curve=None, name="Odoo app"):
    """A self-signed certificate valid from `starts_days` to `valid_days` from now (UTC)."""
    key = ec.generate_private_key(curve) if curve else rsa.generate_private_key(65537, key_size)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None, microsecond=0)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + datetime.timedelta(days=starts_days))
        .not_valid_after(now + datetime.timedelta(days=valid_days))
        .sign(key, hashes.SHA256())
    )
    return AppCertificatePem(
        key=key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode(),
        certificate=certificate.public_bytes(serialization.Encoding.PEM).decode(),
    )
