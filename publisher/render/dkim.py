"""DKIM signing and offline verification with dkimpy (the only dkim import)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import dkim

from publisher.config import MailSettings
from publisher.errors import ConfigError, InputError

#: Headers every digest signature covers (RFC 8058 requires the List-Unsubscribe pair).
SIGNED_HEADERS = (
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
)


class DkimSigner:
    """Sign whole messages for one domain and selector (relaxed/simple, rsa-sha256)."""

    def __init__(self, domain: str, selector: str, private_key: bytes) -> None:
        self.domain = domain.encode("ascii")
        self.selector = selector.encode("ascii")
        self.private_key = private_key

    def sign(self, message: bytes, headers: Sequence[str]) -> bytes:
        """Return the DKIM-Signature header line (with CRLF) to put in front of ``message``."""
        try:
            signature: bytes = dkim.sign(
                message,
                self.selector,
                self.domain,
                self.private_key,
                # Simple body canonicalization: our bodies are quoted-printable with short
                # lines and no trailing spaces, so nothing in transit rewrites them, and
                # dkimpy's relaxed body pass costs milliseconds per 50 KB message.
                canonicalize=(b"relaxed", b"simple"),
                include_headers=[h.lower().encode("ascii") for h in headers],
                linesep=b"\r\n",
            )
        except dkim.DKIMException as exc:
            raise InputError(f"cannot DKIM-sign message: {exc}") from exc
        return signature


def signer_from_settings(mail: MailSettings) -> DkimSigner | None:
    """Return a signer when mail.dkim_domain, dkim_selector and dkim_key_file are all set."""
    configured = [mail.dkim_domain, mail.dkim_selector, mail.dkim_key_file]
    if not any(configured):
        return None
    if not all(configured):
        raise ConfigError(
            "mail.dkim_domain, mail.dkim_selector and mail.dkim_key_file must be set together"
        )
    assert mail.dkim_key_file is not None
    path = Path(mail.dkim_key_file)
    try:
        key = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"mail.dkim_key_file: cannot read {path}: {exc.strerror}") from exc
    if b"PRIVATE KEY" not in key:
        raise ConfigError(f"mail.dkim_key_file: {path} is not a PEM private key")
    try:
        mail.dkim_domain.encode("ascii")
        mail.dkim_selector.encode("ascii")
    except UnicodeEncodeError as exc:
        raise ConfigError("mail.dkim_domain and mail.dkim_selector must be ASCII") from exc
    signer = DkimSigner(mail.dkim_domain, mail.dkim_selector, key)
    try:
        dkim.sign(
            b"From: check@example.org\r\nSubject: x\r\n\r\nx\r\n",
            signer.selector,
            signer.domain,
            key,
        )
    except (dkim.DKIMException, ValueError) as exc:
        raise ConfigError(f"mail.dkim_key_file: {path}: unusable key: {exc}") from exc
    return signer


def verify(message: bytes, dns_txt: Callable[[bytes], bytes | None]) -> bool:
    """Check a message's DKIM signature, looking keys up through ``dns_txt`` (name → TXT)."""

    def dnsfunc(name: bytes, timeout: int = 5) -> bytes | None:
        return dns_txt(name)

    return bool(dkim.verify(message, dnsfunc=dnsfunc))
