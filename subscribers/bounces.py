"""Bounces and complaints: parse DSNs (RFC 3464) and ARF reports, suppress failing addresses."""

from __future__ import annotations

import email
import email.message
import mailbox
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import getaddresses
from pathlib import Path
from typing import Literal

import flufl.bounce
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from subscribers import repository, suppression
from subscribers.errors import MailboxError
from subscribers.models import ACTIVE, BOUNCED, COMPLAINED, PENDING, BounceEvent

Kind = Literal["hard", "soft", "complaint"]
KINDS: tuple[Kind, ...] = ("hard", "soft", "complaint")
MAX_MESSAGE_BYTES = 10 * 1024 * 1024

# Permanent (5.x.x) codes that say nothing bad about the address itself.
_SOFT_PERMANENT = re.compile(r"^5\.(2\.2|3\.4|4\.\d+|7\.\d+)$")
_STATUS = re.compile(r"\b([245]\.\d{1,3}\.\d{1,3})\b")


@dataclass(frozen=True)
class Failure:
    """One failed recipient found in a report."""

    email: str
    kind: Kind
    detail: str
    report_id: str | None = None


@dataclass(frozen=True)
class BounceOutcome:
    """What recording one bounce did."""

    email: str
    kind: Kind
    suppressed: bool
    duplicate: bool = False


def _text(value: object) -> str:
    return " ".join(str(value or "").split())


def _address(field: str) -> str:
    """Take the address out of a DSN recipient field like "rfc822; user@example.org"."""
    _, _, value = field.partition(";")
    value = (value or field).strip().strip("<>").strip()
    return value


def classify_status(action: str, status: str) -> Kind | None:
    """Map a DSN Action and Status to hard or soft (None for delivered/relayed/expanded)."""
    action = action.strip().lower()
    if action in ("delivered", "relayed", "expanded"):
        return None
    code = status.strip().split(" ", 1)[0]
    if code.startswith("2."):
        return None
    if action == "delayed" or code.startswith("4."):
        return "soft"
    if code.startswith("5.") and _SOFT_PERMANENT.match(code):
        return "soft"
    return "hard"


def _report_part(message: email.message.Message, subtype: str) -> email.message.Message | None:
    for part in message.walk():
        if part.get_content_type() == f"message/{subtype}":
            return part
    return None


def _dsn_failures(message: email.message.Message, report_id: str | None) -> list[Failure]:
    part = _report_part(message, "delivery-status")
    if part is None:
        return []
    blocks = part.get_payload()
    if not isinstance(blocks, list):
        return []
    failures: list[Failure] = []
    # The first block is per-message; each later block describes one recipient.
    for block in blocks[1:]:
        if not isinstance(block, email.message.Message):
            continue
        recipient = _address(str(block.get("Original-Recipient") or ""))
        final = _address(str(block.get("Final-Recipient") or ""))
        address = recipient or final
        if not address:
            continue
        status = _text(block.get("Status"))
        kind = classify_status(_text(block.get("Action")), status)
        if kind is None:
            continue
        diagnostic = _text(block.get("Diagnostic-Code"))
        detail = f"DSN {_text(block.get('Action'))} {status} {diagnostic}".strip()
        failures.append(Failure(address, kind, detail[:1000], report_id))
    return failures


def _arf_failures(message: email.message.Message, report_id: str | None) -> list[Failure]:
    part = _report_part(message, "feedback-report")
    if part is None:
        return []
    fields = part.get_payload()
    block = fields[0] if isinstance(fields, list) and fields else None
    if not isinstance(block, email.message.Message):
        return []
    feedback_type = _text(block.get("Feedback-Type")).lower() or "abuse"
    if feedback_type not in ("abuse", "fraud", "other", "virus"):
        return []
    addresses = [_address(str(block.get("Original-Rcpt-To") or ""))]
    if not addresses[0]:
        original = _report_part(message, "rfc822")
        inner = original.get_payload() if original is not None else None
        headers = inner[0] if isinstance(inner, list) and inner else None
        if headers is None:
            for sub in message.walk():
                if sub.get_content_type() == "text/rfc822-headers":
                    raw = sub.get_payload(decode=True)
                    if isinstance(raw, bytes):
                        headers = email.message_from_bytes(raw)
        if isinstance(headers, email.message.Message):
            addresses = [a for _, a in getaddresses([str(v) for v in headers.get_all("To", [])])]
    detail = (
        f"ARF {feedback_type} from {_text(block.get('Reporting-MTA') or block.get('User-Agent'))}"
    )
    return [Failure(a, "complaint", detail[:1000], report_id) for a in addresses if a]


def _heuristic_failures(message: email.message.Message, report_id: str | None) -> list[Failure]:
    # Non-standard bounces (qmail, Exim, Exchange, ...): flufl.bounce's detectors.
    temporary, permanent = flufl.bounce.all_failures(message)
    found: list[Failure] = []
    for kind, values in (("hard", permanent), ("soft", temporary)):
        for value in sorted(values):
            text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
            found.append(Failure(text, kind, f"non-standard bounce ({kind})", report_id))  # type: ignore[arg-type]
    return found


def classify(message: email.message.Message) -> list[Failure]:
    """Return the failed recipients a bounce or complaint report names (empty if none)."""
    report_id = _text(message.get("Message-ID"))[:300] or None
    content_type = message.get_content_type()
    report_type = str(message.get_param("report-type", "") or "").lower()
    if content_type == "multipart/report" and report_type == "feedback-report":
        return _arf_failures(message, report_id)
    if content_type == "multipart/report":
        found = _dsn_failures(message, report_id)
        if found:
            return found
    if _report_part(message, "feedback-report") is not None:
        return _arf_failures(message, report_id)
    return _heuristic_failures(message, report_id)


def read_messages(path: Path) -> Iterator[tuple[str, email.message.Message]]:
    """Yield (label, message) from a maildir, an mbox file or one .eml file."""
    if path.is_dir():
        if not all((path / sub).is_dir() for sub in ("cur", "new")):
            raise MailboxError(f"{path}: a folder must be a maildir (with cur/ and new/)")
        box = mailbox.Maildir(path, factory=None, create=False)
        for key in sorted(box.iterkeys()):
            try:
                with box.get_file(key) as handle:
                    raw = handle.read(MAX_MESSAGE_BYTES + 1)
            except OSError as exc:
                raise MailboxError(f"{path}/{key}: cannot read: {exc}") from exc
            yield f"{path}/{key}", email.message_from_bytes(raw[:MAX_MESSAGE_BYTES])
        return
    try:
        with path.open("rb") as handle:
            head = handle.read(5)
    except OSError as exc:
        raise MailboxError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    if head == b"From ":
        mbox = mailbox.mbox(path, factory=None, create=False)
        for number, key in enumerate(mbox.iterkeys(), start=1):
            yield f"{path}#{number}", email.message_from_bytes(mbox.get_bytes(key))
        return
    # Read at most one byte past the limit: a device or pipe reports size 0 and may never end.
    with path.open("rb") as handle:
        raw = handle.read(MAX_MESSAGE_BYTES + 1)
    if len(raw) > MAX_MESSAGE_BYTES:
        raise MailboxError(f"{path}: larger than {MAX_MESSAGE_BYTES} bytes; not a single message")
    yield str(path), email.message_from_bytes(raw)


async def record_bounce(
    session: AsyncSession,
    email: str,
    kind: Kind,
    detail: str,
    now: datetime,
    soft_limit: int,
    soft_window: timedelta,
    *,
    report_id: str | None = None,
) -> BounceOutcome:
    """Record one bounce or complaint; hard bounces and complaints suppress at once,
    soft bounces once ``soft_limit`` of them fall within ``soft_window``.

    The one path for DSNs, ARF complaints and permanent SMTP failures at send time.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown bounce kind {kind!r}")
    digest = suppression.email_hash(email)
    if report_id is not None:
        seen = await session.scalar(
            sa.select(BounceEvent.id).where(
                BounceEvent.email_hash == digest, BounceEvent.report_id == report_id
            )
        )
        if seen is not None:
            return BounceOutcome(email, kind, False, duplicate=True)
    session.add(
        BounceEvent(
            email_hash=digest, kind=kind, created_at=now, detail=detail[:2000], report_id=report_id
        )
    )
    await session.flush()
    subscriber = await repository.get_by_email(session, email)
    if subscriber is not None:
        subscriber.last_bounce_at = now
    suppressed = False
    if kind == "complaint":
        await suppression.suppress(session, email, suppression.COMPLAINT, now, detail)
        suppressed = True
        if subscriber is not None:
            subscriber.status = COMPLAINED
    elif kind == "hard":
        await suppression.suppress(session, email, suppression.HARD_BOUNCE, now, detail)
        suppressed = True
        if subscriber is not None:
            subscriber.hard_bounces += 1
            if subscriber.status in (ACTIVE, PENDING):
                subscriber.status = BOUNCED
    else:
        since = now - soft_window
        if subscriber is not None:
            subscriber.soft_bounces += 1
            # Bounces from before a fresh confirmation do not count against it.
            if subscriber.confirmed_at is not None and subscriber.confirmed_at > since:
                since = subscriber.confirmed_at
        recent = await session.scalar(
            sa.select(sa.func.count())
            .select_from(BounceEvent)
            .where(
                BounceEvent.email_hash == digest,
                BounceEvent.kind == "soft",
                BounceEvent.created_at >= since,
            )
        )
        if int(recent or 0) >= soft_limit:
            await suppression.suppress(session, email, suppression.SOFT_BOUNCE, now, detail)
            suppressed = True
            if subscriber is not None and subscriber.status in (ACTIVE, PENDING):
                subscriber.status = BOUNCED
    await session.flush()
    return BounceOutcome(email, kind, suppressed)
