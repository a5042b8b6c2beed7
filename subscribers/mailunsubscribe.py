"""Unsubscribe by mail: a reader's mail to the List-Unsubscribe ``mailto:`` address.

The address is ``local+TOKEN@domain`` and the subject ``unsubscribe TOKEN``, where TOKEN
is the reader's signed unsubscribe-by-mail token (Tokens.mail_unsubscribe). Either place
is enough (some servers drop the ``+tag``, some clients edit the subject). Without a
valid token nothing changes; automatic replies (RFC 3834) are never taken as a request.
"""

from __future__ import annotations

import email.message
import re
from dataclasses import dataclass
from datetime import datetime
from email.header import decode_header, make_header
from email.utils import getaddresses

from sqlalchemy.ext.asyncio import AsyncSession

from subscribers import consent, repository
from subscribers.errors import TokenError
from subscribers.tokens import Tokens

#: Headers that may carry the address the reader wrote to (the envelope after delivery).
ADDRESS_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "To", "Cc")
#: Header values longer than this are cut before they are searched (hostile input).
MAX_HEADER = 2000
MAX_ADDRESSES = 50
_TOKEN = r"([0-9]{1,18}-[a-z2-7]{16})"  # noqa: S105 - a pattern, not a secret
_SUBJECT = re.compile(rf"\bunsubscribe\s+{_TOKEN}\b", re.IGNORECASE)


@dataclass(frozen=True)
class MailRequest:
    """What a mail asking to unsubscribe found and did."""

    token: str
    subscriber_id: int | None
    email: str = ""
    changed: bool = False

    @property
    def valid(self) -> bool:
        """Tell whether the token was genuine and named a subscriber."""
        return self.subscriber_id is not None


def _header(message: email.message.Message, name: str) -> list[str]:
    values = []
    for raw in (message.get_all(name) or [])[:MAX_ADDRESSES]:
        try:
            values.append(str(make_header(decode_header(str(raw)[:MAX_HEADER]))))
        except (ValueError, LookupError, UnicodeError):
            values.append(str(raw)[:MAX_HEADER])
    return values


def is_automatic(message: email.message.Message) -> bool:
    """Tell whether a mail was sent by a machine (auto-replies must not unsubscribe anyone)."""
    submitted = str(message.get("Auto-Submitted", "no")).strip().lower()[:100]
    return submitted.split(";", 1)[0].strip() not in ("", "no")


def find_tokens(message: email.message.Message, local_part: str) -> list[str]:
    """Return the tokens a mail carries: in ``local_part+TOKEN@`` addresses, then the subject."""
    found: list[str] = []
    if local_part:
        local = re.escape(local_part.lower())
        in_address = re.compile(rf"^{local}\+{_TOKEN}@", re.IGNORECASE)
        values = [v for name in ADDRESS_HEADERS for v in _header(message, name)]
        for _name, address in getaddresses(values)[:MAX_ADDRESSES]:
            match = in_address.match(address.strip())
            if match:
                found.append(match[1].lower())
    for subject in _header(message, "Subject")[:1]:
        match = _SUBJECT.search(subject)
        if match:
            found.append(match[1].lower())
    return list(dict.fromkeys(found))


async def handle_mail(
    session: AsyncSession,
    tokens: Tokens,
    message: email.message.Message,
    local_part: str,
    now: datetime,
) -> MailRequest | None:
    """Unsubscribe the reader a mail names with a valid token; None when it is no request.

    A request whose tokens are all forged or tampered with changes nothing (the result
    says so). The first genuine token decides: one mail unsubscribes one reader.
    """
    if is_automatic(message):
        return None
    candidates = find_tokens(message, local_part)
    if not candidates:
        return None
    for token in candidates:
        try:
            subscriber_id = tokens.load_mail_unsubscribe(token)
        except TokenError:
            continue
        subscriber = await repository.get(session, subscriber_id)
        if subscriber is None:
            continue
        changed = await consent.unsubscribe(session, subscriber, now, detail="mail")
        return MailRequest(token, subscriber.id, subscriber.email, changed)
    return MailRequest(candidates[0], None)
