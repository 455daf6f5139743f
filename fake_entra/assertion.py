"""Certificate credentials: the client assertion of a token request, checked as Entra ID does.

Microsoft's "certificate credentials" (learn.microsoft.com/entra/identity-platform/
certificate-credentials): a JWT signed with the private key of a certificate registered on the
app, ``alg`` PS256 (RS256 with the legacy SHA-1 thumbprint), the certificate named by ``x5t#S256``
(or ``x5t``: base64url of its SHA-256 or SHA-1 thumbprint), ``aud`` the token endpoint it is sent
to, ``iss`` and ``sub`` the app's client id, ``jti`` an identifier, ``exp`` (and ``nbf`` if given)
around now. Entra answers 401 ``invalid_client`` with AADSTS700027 when the key is unknown,
expired or the signature wrong, AADSTS700024 for times outside the assertion's range,
AADSTS700021/AADSTS50048 for a wrong issuer or subject, AADSTS700023 for another audience and
AADSTS50027 for a token it cannot read.
"""

import base64
import binascii
import datetime
import json

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
CLOCK_SKEW = 300  # seconds Entra tolerates between its clock and the client's
_PADDINGS = {
    "RS256": lambda: padding.PKCS1v15(),
    # RFC 7518: PS256's salt is as long as the SHA-256 digest.
    "PS256": lambda: padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=hashes.SHA256.digest_size),
}


class AssertionRefused(Exception):
    """Why Entra refuses an assertion: ``code`` (AADSTS number), ``reason`` (for the text)."""

    def __init__(self, code, reason=""):
        super().__init__(f"AADSTS{code}: {reason}")
        self.code = code
        self.reason = reason


def registered_certificate(pem):
    """A certificate registered on an app: (SHA-1 and SHA-256 thumbprints as x5t values, the
    certificate). Raises ValueError for anything that is not one PEM certificate."""
    certificate = x509.load_pem_x509_certificate(pem.encode() if isinstance(pem, str) else pem)
    return {
        "x5t": _b64url(certificate.fingerprint(hashes.SHA1())),  # Microsoft's legacy thumbprint
        "x5t#S256": _b64url(certificate.fingerprint(hashes.SHA256())),
        "certificate": certificate,
    }


def check(assertion_type, assertion, client_id, certificates, audiences, now):
    """None if the assertion proves ``client_id``; else raises AssertionRefused. ``certificates``:
    the app's, as registered_certificate() returns them; ``audiences``: the token endpoint URLs
    this request may name in ``aud`` (lower case)."""
    if assertion_type != JWT_BEARER:
        raise AssertionRefused(50027, "client_assertion_type is not " + JWT_BEARER)
    try:
        header_b64, claims_b64, signature_b64 = assertion.split(".")
        header, claims = _json(header_b64), _json(claims_b64)
        signature = _unb64url(signature_b64)
    except (ValueError, binascii.Error):
        raise AssertionRefused(50027, "JWT token is invalid or malformed.") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise AssertionRefused(50027, "JWT token is invalid or malformed.")
    alg = header.get("alg")
    thumbprint_name = "x5t#S256" if "x5t#S256" in header else "x5t"
    thumbprint = header.get(thumbprint_name)
    if alg not in _PADDINGS or not isinstance(thumbprint, str):
        raise AssertionRefused(700027, "Client assertion failed signature validation.")
    # MSAL (Microsoft's own library) sends the thumbprint with base64 padding; Entra takes both.
    found = [cert for cert in certificates if cert[thumbprint_name] == thumbprint.rstrip("=")]
    if not found:
        raise AssertionRefused(
            700027, f"The key was not found. Thumbprint of key used by client: '{thumbprint}'")
    certificate = found[0]["certificate"]
    if not _valid_at(certificate, now):
        raise AssertionRefused(
            700027, f"The key used is expired. Thumbprint of key used by client: '{thumbprint}'")
    try:
        certificate.public_key().verify(
            signature, f"{header_b64}.{claims_b64}".encode(), _PADDINGS[alg](), hashes.SHA256()
        )
    except InvalidSignature:
        raise AssertionRefused(
            700027, "The provided signature value did not match the expected signature value.") from None
    _check_claims(claims, client_id, audiences, now)


def _check_claims(claims, client_id, audiences, now):
    if claims.get("iss") != client_id:
        raise AssertionRefused(
            700021, "Client assertion application identifier doesn't match 'client_id' parameter.")
    if claims.get("sub") != claims.get("iss"):
        raise AssertionRefused(50048, "Subject mismatches Issuer claim in the client assertion.")
    if str(claims.get("aud") or "").lower().rstrip("/") not in audiences:
        raise AssertionRefused(700023, "Client assertion audience claim does not match Realm issuer.")
    if not isinstance(claims.get("jti"), str) or not claims["jti"]:
        raise AssertionRefused(50027, "Invalid JWT token. The token has no jti claim.")
    expires, not_before = claims.get("exp"), claims.get("nbf", claims.get("iat", 0))
    if not isinstance(expires, int | float) or not isinstance(not_before, int | float):
        raise AssertionRefused(50027, "Invalid JWT token. exp and nbf must be numbers.")
    if expires + CLOCK_SKEW <= now or not_before - CLOCK_SKEW > now:
        raise AssertionRefused(700024, f"Client assertion is not within its valid time range. Current time: "
                                       f"{_iso(now)}, expiry time of assertion {_iso(expires)}.")


def _valid_at(certificate, now):
    moment = datetime.datetime.fromtimestamp(now, datetime.timezone.utc).replace(tzinfo=None)
    start = getattr(certificate, "not_valid_before_utc", None) or certificate.not_valid_before
    end = getattr(certificate, "not_valid_after_utc", None) or certificate.not_valid_after
    return start.replace(tzinfo=None) <= moment < end.replace(tzinfo=None)


def _iso(timestamp):
    return datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc).strftime("%m/%d/%Y %H:%M:%S")


def _json(part):
    return json.loads(_unb64url(part))


def _unb64url(part):
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _b64url(data):
    return base64.urlsafe_b64encode(data).decode().rstrip("=")
