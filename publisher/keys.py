"""Public-key operations (the only cryptography import): DKIM keys and webhook signatures."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from publisher.errors import InputError

MIN_KEY_BITS = 1024
#: Largest certificate or public key accepted (a real SNS certificate is about 2 KB).
MAX_KEY_BYTES = 16 * 1024


@dataclass(frozen=True)
class RsaSigningKey:
    """An RSA private key that signs with PKCS#1 v1.5 and SHA-256 (DKIM rsa-sha256)."""

    _key: rsa.RSAPrivateKey

    @property
    def bits(self) -> int:
        """Return the key size in bits."""
        return self._key.key_size

    def sign_sha256(self, data: bytes) -> bytes:
        """Return the raw signature of ``data``."""
        return self._key.sign(data, padding.PKCS1v15(), hashes.SHA256())

    def public_key_base64(self) -> str:
        """Return the public key as DKIM's ``p=`` wants it: base64 SubjectPublicKeyInfo DER."""
        der = self._key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return base64.b64encode(der).decode("ascii")


def load_dkim_key(pem: bytes) -> RsaSigningKey:
    """Load an unencrypted PEM RSA private key of at least 1024 bits."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except TypeError as exc:  # the key is encrypted
        raise InputError("DKIM key is password-protected; store it unencrypted") from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise InputError(f"unusable DKIM key: {exc}") from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise InputError("DKIM key is not an RSA key (only rsa-sha256 is supported)")
    if key.key_size < MIN_KEY_BITS:
        raise InputError(f"DKIM key has {key.key_size} bits; use 2048 (at least {MIN_KEY_BITS})")
    return RsaSigningKey(key)


def verify_with_certificate(
    certificate_pem: bytes, signature: bytes, data: bytes, digest: Literal["sha1", "sha256"]
) -> bool:
    """Check an RSA PKCS#1 v1.5 signature with the key of a PEM X.509 certificate."""
    if len(certificate_pem) > MAX_KEY_BYTES:
        return False
    try:
        certificate = x509.load_pem_x509_certificate(certificate_pem)
        key = certificate.public_key()
    except (ValueError, UnsupportedAlgorithm):
        return False
    if not isinstance(key, rsa.RSAPublicKey):
        return False
    # SNS SignatureVersion 1 is SHA1withRSA by Amazon's definition; version 2 is SHA-256.
    algorithm: hashes.HashAlgorithm = hashes.SHA1() if digest == "sha1" else hashes.SHA256()  # noqa: S303
    try:
        key.verify(signature, data, padding.PKCS1v15(), algorithm)
    except InvalidSignature:
        return False
    return True


def load_ecdsa_public_key(text: str) -> ec.EllipticCurvePublicKey:
    """Load an EC public key given as PEM or as bare base64 DER (SendGrid shows the latter)."""
    text = text.strip()
    if len(text) > MAX_KEY_BYTES:
        raise InputError("public key is too long")
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode("ascii"))
        else:
            key = serialization.load_der_public_key(base64.b64decode(text, validate=True))
    except (ValueError, UnsupportedAlgorithm, binascii.Error) as exc:
        raise InputError(f"not a PEM or base64 DER public key: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise InputError("not an elliptic-curve (ECDSA) public key")
    return key


def verify_ecdsa_sha256(key: ec.EllipticCurvePublicKey, signature: bytes, data: bytes) -> bool:
    """Check a DER-encoded ECDSA/SHA-256 signature of ``data``."""
    try:
        key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        return False
    return True


EcdsaPublicKey = ec.EllipticCurvePublicKey
