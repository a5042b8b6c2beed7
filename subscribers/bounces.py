"""Bounces and complaints: parse DSNs (RFC 3464) and ARF reports, suppress failing readers.

Reports come from anyone who can mail the bounce box, so every one is read with limits
(size, header size, MIME nesting) and counts only when it carries a VERP token
(subscribers/verp.py) proving it answers a message we sent to that reader.
"""

from __future__ import annotations

import email
import email.message
import mailbox
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses
from enum import StrEnum
from pathlib import Path
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from subscribers import repository, suppression
from subscribers.addresses import normalize
from subscribers.errors import InvalidAddress, MailboxError, MalformedReport
from subscribers.models import ACTIVE, BOUNCED, COMPLAINED, PENDING, BounceEvent
from subscribers.verp import ReturnPaths

Kind = Literal["hard", "soft", "complaint"]
KINDS: tuple[Kind, ...] = ("hard", "soft", "complaint")
MAX_MESSAGE_BYTES = 10 * 1024 * 1024
#: The top-level header block of a report; real ones are a few kilobytes.
MAX_HEADER_BYTES = 256 * 1024
#: multipart/* and message/* parts in one report, and how deep they nest: a DSN or ARF
#: report is three levels deep (report, quoted message, its alternatives).
MAX_CONTAINERS = 64
MAX_DEPTH = 12
MAX_PARTS = 256
_CONTAINER = re.compile(rb"content-type[ \t]*:[\s]*(?:multipart|message)/", re.I)
_HEADER_END = re.compile(rb"\r?\n\r?\n")

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


def printable(value: object, limit: int = 1000) -> str:
    """Return text fit for a terminal or a log: one line, every control shown as an escape.

    Diagnostic-Code and friends are written by whoever sent the report: an ESC sequence
    there must never reach the operator's terminal raw.
    """
    text = " ".join(str(value or "").split())[: limit * 2]
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)[:limit]


def _text(value: object) -> str:
    return printable(value)


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


def parts_of(message: email.message.Message) -> list[email.message.Message]:
    """Return every part of a message, depth first, or raise MalformedReport past the limits.

    ``Message.walk`` recurses once per level: thousands of nested multiparts would end
    in RecursionError. This walk keeps its own stack and stops at MAX_DEPTH.
    """
    found: list[email.message.Message] = []
    stack: list[tuple[email.message.Message, int]] = [(message, 1)]
    while stack:
        part, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise MalformedReport(f"MIME parts nested deeper than {MAX_DEPTH} levels")
        found.append(part)
        if len(found) > MAX_PARTS:
            raise MalformedReport(f"more than {MAX_PARTS} MIME parts")
        payload = part.get_payload() if part.is_multipart() else None
        if isinstance(payload, list):
            stack.extend(
                (p, depth + 1) for p in reversed(payload) if isinstance(p, email.message.Message)
            )
    return found


def _report_part(parts: list[email.message.Message], subtype: str) -> email.message.Message | None:
    for part in parts:
        if part.get_content_type() == f"message/{subtype}":
            return part
    return None


def _dsn_failures(parts: list[email.message.Message], report_id: str | None) -> list[Failure]:
    part = _report_part(parts, "delivery-status")
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
        status = _text(block.get("Status"))[:100]
        kind = classify_status(_text(block.get("Action")), status)
        if kind is None:
            continue
        diagnostic = _text(block.get("Diagnostic-Code"))
        detail = f"DSN {_text(block.get('Action'))} {status} {diagnostic}".strip()
        failures.append(Failure(address, kind, detail[:1000], report_id))
    return failures


def _arf_failures(parts: list[email.message.Message], report_id: str | None) -> list[Failure]:
    part = _report_part(parts, "feedback-report")
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
        original = _report_part(parts, "rfc822")
        inner = original.get_payload() if original is not None else None
        headers = inner[0] if isinstance(inner, list) and inner else None
        if headers is None:
            for sub in parts:
                if sub.get_content_type() == "text/rfc822-headers":
                    raw = sub.get_payload(decode=True)
                    if isinstance(raw, bytes):
                        # Headers only, as the part type says: never a MIME tree to descend.
                        headers = BytesHeaderParser(policy=compat32).parsebytes(raw[:65536])
        if isinstance(headers, email.message.Message):
            to = [str(v)[:2000] for v in headers.get_all("To", [])[:10]]
            addresses = [a for _, a in getaddresses(to)]
    detail = (
        f"ARF {feedback_type[:50]} from "
        f"{_text(block.get('Reporting-MTA') or block.get('User-Agent'))[:200]}"
    )
    return [Failure(a, "complaint", detail[:1000], report_id) for a in addresses if a]


def _heuristic_failures(message: email.message.Message, report_id: str | None) -> list[Failure]:
    # Non-standard bounces (qmail, Exim, Exchange, ...): flufl.bounce's detectors. Imported
    # here: every sending command loads this module, only a bounce run reads mailboxes.
    import flufl.bounce

    temporary, permanent = flufl.bounce.all_failures(message)
    found: list[Failure] = []
    for kind, values in (("hard", permanent), ("soft", temporary)):
        for value in sorted(values):
            text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
            found.append(Failure(text, kind, f"non-standard bounce ({kind})", report_id))  # type: ignore[arg-type]
    return found


def classify(message: email.message.Message) -> list[Failure]:
    """Return the failed recipients a bounce or complaint report names (empty if none).

    Addresses that are not valid email addresses are left out: a report cannot make us
    record garbage. Raise MalformedReport for a message past the MIME limits.
    """
    return _valid(_classify(message, parts_of(message)))


def _classify(message: email.message.Message, parts: list[email.message.Message]) -> list[Failure]:
    report_id = _text(message.get("Message-ID"))[:300] or None
    content_type = message.get_content_type()
    report_type = str(message.get_param("report-type", "") or "").lower()
    if content_type == "multipart/report" and report_type == "feedback-report":
        return _arf_failures(parts, report_id)
    if content_type == "multipart/report":
        found = _dsn_failures(parts, report_id)
        if found:
            return found
    if _report_part(parts, "feedback-report") is not None:
        return _arf_failures(parts, report_id)
    return _heuristic_failures(message, report_id)


def _valid(failures: list[Failure]) -> list[Failure]:
    valid: list[Failure] = []
    for failure in failures:
        try:
            address = normalize(failure.email).email
        except InvalidAddress:
            continue
        valid.append(Failure(address, failure.kind, failure.detail, failure.report_id))
    return valid


def parse_message(raw: bytes) -> email.message.Message:
    """Parse one report within the limits, or raise MalformedReport saying which one."""
    if len(raw) > MAX_MESSAGE_BYTES:
        raise MalformedReport(f"larger than {MAX_MESSAGE_BYTES} bytes")
    end = _HEADER_END.search(raw, 0, MAX_HEADER_BYTES + 4)
    if end is None and len(raw) > MAX_HEADER_BYTES:
        raise MalformedReport(f"header block larger than {MAX_HEADER_BYTES} bytes")
    # Counted before parsing: the parser itself recurses once per nested multipart.
    containers = len(_CONTAINER.findall(raw))
    if containers > MAX_CONTAINERS:
        raise MalformedReport(f"{containers} multipart/message parts (at most {MAX_CONTAINERS})")
    try:
        return email.message_from_bytes(raw)
    except RecursionError:
        raise MalformedReport(f"MIME parts nested deeper than {MAX_DEPTH} levels") from None


@dataclass(frozen=True)
class RawMessage:
    """One message of a mailbox as stored, or why it could not be read."""

    label: str
    data: bytes = b""
    error: str | None = None


def read_mailbox(path: Path) -> Iterator[RawMessage]:
    """Yield the messages of a maildir, an mbox file or one .eml file, unparsed.

    A message that cannot be read or is too large is yielded with its error, so the
    caller reports it and goes on; only an unreadable mailbox raises MailboxError.
    """
    if path.is_dir():
        if not all((path / sub).is_dir() for sub in ("cur", "new")):
            raise MailboxError(f"{path}: a folder must be a maildir (with cur/ and new/)")
        box = mailbox.Maildir(path, factory=None, create=False)
        for key in sorted(box.iterkeys()):
            label = f"{path}/{key}"
            try:
                with box.get_file(key) as handle:
                    raw = handle.read(MAX_MESSAGE_BYTES + 1)
            except OSError as exc:
                yield RawMessage(label, error=f"cannot read: {exc.strerror or exc}")
                continue
            yield _sized(label, raw)
        return
    try:
        with path.open("rb") as handle:
            head = handle.read(5)
    except OSError as exc:
        raise MailboxError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    if head == b"From ":
        mbox = mailbox.mbox(path, factory=None, create=False)
        for number, key in enumerate(mbox.iterkeys(), start=1):
            yield _sized(f"{path}#{number}", mbox.get_bytes(key))
        return
    # Read at most one byte past the limit: a device or pipe reports size 0 and may never end.
    with path.open("rb") as handle:
        raw = handle.read(MAX_MESSAGE_BYTES + 1)
    if len(raw) > MAX_MESSAGE_BYTES:
        raise MailboxError(f"{path}: larger than {MAX_MESSAGE_BYTES} bytes; not a single message")
    yield RawMessage(str(path), raw)


def _sized(label: str, raw: bytes) -> RawMessage:
    if len(raw) > MAX_MESSAGE_BYTES:
        return RawMessage(label, error=f"larger than {MAX_MESSAGE_BYTES} bytes")
    return RawMessage(label, raw)


class Verdict(StrEnum):
    """What became of one report."""

    #: Answers a message we sent to a reader: recorded against that reader.
    VERIFIED = "verified"
    #: A bounce or complaint, but it carries no valid token: ignored (and logged).
    UNVERIFIED = "unverified"
    #: Not a bounce or complaint at all (an auto-reply, a human answer).
    NOT_A_REPORT = "not-a-report"


@dataclass(frozen=True)
class Report:
    """One examined report: its failures, the reader it answers (if proven) and the verdict."""

    verdict: Verdict
    failures: tuple[Failure, ...] = ()
    subscriber_id: int | None = None
    message: str = ""
    kind: Kind | None = None
    detail: str = ""
    report_id: str | None = None
    why: str = ""


_SEVERITY: dict[Kind, int] = {"soft": 0, "hard": 1, "complaint": 2}


def examine(raw: bytes, return_paths: ReturnPaths) -> Report:
    """Parse and classify one report and check that it answers a message we sent.

    Raise MalformedReport (one line) for a message past the limits or that the parsers
    cannot read; anything a hostile message makes the email package or flufl.bounce
    raise is turned into that.
    """
    try:
        message = parse_message(raw)
        parts = parts_of(message)
        failures = _valid(_classify(message, parts))
        tokens = return_paths.find(message, parts) if failures else None
    except MalformedReport:
        raise
    except RecursionError:
        raise MalformedReport(f"MIME parts nested deeper than {MAX_DEPTH} levels") from None
    except Exception as exc:  # the parsers raise anything on hostile input
        raise MalformedReport(f"cannot parse: {type(exc).__name__}: {printable(exc, 200)}") from exc
    if tokens is None:
        return Report(Verdict.NOT_A_REPORT)
    named = ", ".join(sorted({f.email for f in failures}))[:300]
    if not tokens.answers:
        why = "no bounce token: it answers no message we sent"
        if tokens.forged:
            why = f"{tokens.forged} forged or damaged bounce token(s)"
        return Report(Verdict.UNVERIFIED, tuple(failures), why=f"{why} (names {named})")
    if len({a.subscriber_id for a in tokens.answers}) > 1:
        return Report(
            Verdict.UNVERIFIED,
            tuple(failures),
            why=f"tokens of several readers in one report (names {named})",
        )
    answer = min(tokens.answers, key=lambda a: a.message)
    # The token, not the report's text, says who the reader is; the report says how bad.
    worst = max(failures, key=lambda f: _SEVERITY[f.kind])
    detail = f"{worst.detail} (report names {named})"
    return Report(
        Verdict.VERIFIED,
        tuple(failures),
        subscriber_id=answer.subscriber_id,
        message=answer.message,
        kind=worst.kind,
        detail=detail[:1000],
        report_id=worst.report_id,
    )


async def record_verified(
    session: AsyncSession,
    subscriber_id: int,
    kind: Kind,
    detail: str,
    now: datetime,
    soft_limit: int,
    soft_window: timedelta,
    *,
    report_id: str | None = None,
) -> BounceOutcome | None:
    """Record a bounce or complaint proven to answer mail we sent to this reader.

    The one entry for every verified report: VERP-checked DSNs and ARF reports, and any
    other channel that authenticates its reports (a provider's signed webhook). Return
    None when the reader no longer exists.
    """
    subscriber = await repository.get(session, subscriber_id)
    if subscriber is None:
        return None
    return await record_bounce(
        session,
        subscriber.email,
        kind,
        detail,
        now,
        soft_limit,
        soft_window,
        report_id=report_id,
    )


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

    The one path behind record_verified and permanent SMTP failures at send time (both
    already known to concern mail we sent to ``email``); never call it with an address
    taken from an unverified report.
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
