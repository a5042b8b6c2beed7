"""DKIM signing (RFC 6376, rsa-sha256, relaxed/simple) with OpenSSL; offline checks with dkimpy.

Signing is done here rather than with ``dkim.sign``: dkimpy computes RSA in pure Python
(about 12 ms a message), while the canonicalization and hashes below plus one OpenSSL
PKCS#1 v1.5 signature take well under a millisecond. dkimpy stays the independent verifier.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import dkim
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from publisher.clock import SystemClock
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

#: Headers listed once more than they occur (RFC 6376 8.15, "oversigning"): a header of
#: these names added after signing, above or below ours, breaks the signature, so a
#: forwarder cannot slip in a second Subject, a Reply-To or a Cc that readers would see.
OVERSIGNED = (
    "from",
    "sender",
    "reply-to",
    "to",
    "cc",
    "subject",
    "date",
    "message-id",
    "in-reply-to",
    "references",
    "list-id",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "list-archive",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
)

#: RFC 8301: verifiers reject RSA keys under 1024 bits.
MIN_KEY_BITS = 1024
_LINE = 78  # RFC 5322 SHOULD: lines of at most 78 characters before CRLF
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DNS_NAME = re.compile(rf"(?=.{{1,253}}\Z){_LABEL}(?:\.{_LABEL})*")
_FIELD_NAME = re.compile(rb"[!-9;-~]+")  # RFC 5322 ftext: printable ASCII except ":"
_FIELD = re.compile(rb"([!-9;-~]+):")
_WSP = re.compile(rb"[ \t]+")
_NAME = b"DKIM-Signature"

_OVERSIGNED = tuple(name.encode("ascii") for name in OVERSIGNED)
_PADDING = padding.PKCS1v15()
_SHA256 = hashes.SHA256()


def canonical_header(name: bytes, value: bytes) -> bytes:
    """Canonicalize one header field the relaxed way (RFC 6376 3.4.2), CRLF included.

    ``value`` is everything after the colon as it stands in the message, folds included:
    unfold, squeeze each run of spaces and tabs to one space, trim both ends, lowercase
    the name.
    """
    return name.lower() + b":" + _WSP.sub(b" ", value.replace(b"\r\n", b"")).strip(b" \t") + b"\r\n"


def body_hash(body: bytes) -> bytes:
    """Return the base64 SHA-256 of a body under simple canonicalization (RFC 6376 3.4.3)."""
    end = len(body)
    while body.endswith(b"\r\n", 0, end):
        end -= 2
    digest = hashlib.sha256(memoryview(body)[:end])
    # Trailing empty lines go; exactly one CRLF ends the body (an empty body is one CRLF).
    digest.update(b"\r\n")
    return base64.b64encode(digest.digest())


def split_message(message: bytes) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """Split a CRLF message into its (name, raw value) header fields and its body."""
    if message.startswith(b"\r\n"):
        raise InputError("cannot DKIM-sign a message without a header")
    end = message.find(b"\r\n\r\n")
    if end < 0:
        head, body = message.removesuffix(b"\r\n"), b""
    else:
        head, body = message[:end], message[end + 4 :]
    fields: list[tuple[bytes, bytes]] = []
    for line in head.split(b"\r\n"):
        if b"\r" in line or b"\n" in line:
            raise InputError(f"cannot DKIM-sign: bare CR or LF in header line {line[:60]!r}")
        if line[:1] in (b" ", b"\t"):
            if not fields:
                raise InputError("cannot DKIM-sign: the header starts with a continuation line")
            name, value = fields[-1]
            fields[-1] = (name, value + b"\r\n" + line)
            continue
        match = _FIELD.match(line)
        if match is None:
            raise InputError(f"cannot DKIM-sign: malformed header line {line[:60]!r}")
        fields.append((match[1], line[match.end() :]))
    return fields, body


def _fold(pieces: Iterable[tuple[bytes, bytes]], start: bytes) -> list[bytes]:
    """Lay out (separator, piece) pairs from ``start``, opening a new line before 78 columns.

    A fold is CRLF plus a space; each separator is a place where RFC 6376 allows FWS. Only
    a piece longer than a line by itself (a domain of over 70 characters) passes 78.
    """
    lines: list[bytes] = []
    line = start
    for separator, piece in pieces:
        if len(line) + len(separator) + len(piece) > _LINE:
            lines.append(line)
            line = b" " + piece
        else:
            line += separator + piece
    lines.append(line)
    return lines


def _is_dns_name(value: str) -> bool:
    return bool(_DNS_NAME.fullmatch(value))


def load_private_key(pem: bytes) -> rsa.RSAPrivateKey:
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
    return key


class DkimSigner:
    """Sign whole messages for one domain and selector (relaxed/simple, rsa-sha256)."""

    def __init__(self, domain: str, selector: str, private_key: bytes) -> None:
        for what, value in (("domain", domain), ("selector", selector)):
            if not _is_dns_name(value):
                raise InputError(f"DKIM {what} is not an ASCII DNS name: {value!r}")
        self.domain = domain.encode("ascii")
        self.selector = selector.encode("ascii")
        self._key = load_private_key(private_key)
        self._fixed = (
            b"v=1;",
            b"a=rsa-sha256;",
            b"c=relaxed/simple;",
            b"d=" + self.domain + b";",
            b"s=" + self.selector + b";",
        )
        self._names: dict[tuple[str, ...], tuple[bytes, ...]] = {}

    def sign(
        self, message: bytes, headers: Sequence[str], *, timestamp: int | None = None
    ) -> bytes:
        """Return the DKIM-Signature header line (with CRLF) to put in front of ``message``.

        Each header named in ``headers`` is signed once per occurrence (bottom-up, as
        RFC 6376 5.4.2 selects them); names absent from the message are left out of h=,
        except the OVERSIGNED ones, which h= always lists once more than they occur.
        ``timestamp`` (t=, Unix seconds) defaults to now. The body is hashed as given, so
        it must already have CRLF line ends, as our encoders write them.
        """
        wanted = self._names.get(tuple(headers))
        if wanted is None:
            wanted = self._names[tuple(headers)] = _header_names(headers)
        fields, body = split_message(message)
        present: dict[bytes, list[tuple[bytes, bytes]]] = {}
        for name, value in fields:
            present.setdefault(name.lower(), []).append((name, value))
        signed: list[bytes] = []
        hashed: list[bytes] = []
        for key in wanted:
            for name, value in reversed(present.get(key, ())):
                signed.append(key)
                hashed.append(canonical_header(name, value))
            if key in _OVERSIGNED:
                signed.append(key)  # selects no header: hashes nothing, forbids one more
        if b"from" not in present:
            raise InputError("cannot DKIM-sign a message without a From header (RFC 6376 5.4)")
        if timestamp is None:
            timestamp = int(SystemClock().now().timestamp())
        elif timestamp < 0:
            raise InputError(f"cannot DKIM-sign with a negative timestamp: {timestamp}")
        pieces = [(b" ", tag) for tag in self._fixed]
        pieces.append((b" ", b"t=%d;" % timestamp))
        pieces.append((b" ", b"h=" + signed[0] + (b":" if len(signed) > 1 else b";")))
        pieces += [(b"", name + b":") for name in signed[1:-1]]
        if len(signed) > 1:
            pieces.append((b"", signed[-1] + b";"))
        pieces.append((b" ", b"bh=" + body_hash(body) + b";"))
        lines = _fold(pieces, _NAME + b":")
        # b= opens its own line: the hash covers this header with b= empty (RFC 6376 3.7).
        lines.append(b" b=")
        header = b"\r\n".join(lines)
        hashed.append(canonical_header(_NAME, header[len(_NAME) + 1 :]).removesuffix(b"\r\n"))
        signature = base64.b64encode(self._key.sign(b"".join(hashed), _PADDING, _SHA256))
        width = _LINE - 3
        folded = [signature[:width]]
        folded += [signature[i : i + _LINE - 1] for i in range(width, len(signature), _LINE - 1)]
        return header + b"\r\n ".join(folded) + b"\r\n"


def _header_names(headers: Sequence[str]) -> tuple[bytes, ...]:
    """Lowercase, check and de-duplicate the names to sign, keeping their order."""
    names: list[bytes] = []
    for header in headers:
        text = header.strip().lower()
        name = text.encode("ascii", "replace")
        if not text.isascii() or not _FIELD_NAME.fullmatch(name):
            raise InputError(f"cannot DKIM-sign header {header!r}: not a header field name")
        if name not in names:
            names.append(name)
    if b"from" not in names:
        raise InputError("DKIM signatures must cover From (RFC 6376 5.4)")
    names += [name for name in _OVERSIGNED if name not in names]
    return tuple(names)


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
    for key_name, value in (
        ("dkim_domain", mail.dkim_domain),
        ("dkim_selector", mail.dkim_selector),
    ):
        if not _is_dns_name(value):
            raise ConfigError(f"mail.{key_name}: not an ASCII DNS name: {value!r}")
    path = Path(mail.dkim_key_file)
    try:
        key = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"mail.dkim_key_file: cannot read {path}: {exc.strerror}") from exc
    if b"PRIVATE KEY" not in key:
        raise ConfigError(f"mail.dkim_key_file: {path} is not a PEM private key")
    try:
        return DkimSigner(mail.dkim_domain, mail.dkim_selector, key)
    except InputError as exc:
        raise ConfigError(f"mail.dkim_key_file: {path}: {exc}") from exc


def verify(message: bytes, dns_txt: Callable[[bytes], bytes | None]) -> bool:
    """Check a message's DKIM signature, looking keys up through ``dns_txt`` (name → TXT)."""

    def dnsfunc(name: bytes, timeout: int = 5) -> bytes | None:
        return dns_txt(name)

    return bool(dkim.verify(message, dnsfunc=dnsfunc))
