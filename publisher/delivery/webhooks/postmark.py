"""Postmark bounce and spam-complaint webhooks, authenticated by HTTP basic auth.

Postmark signs nothing: its documented protection is basic-auth credentials in the
webhook URL (``https://user:password@host/webhooks/postmark``) over HTTPS. Its payload
timestamps are not covered by any signature, so replays are refused by record ID alone.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from typing import Any

from publisher.delivery.webhooks import (
    BadSignature,
    Delivery,
    Event,
    Kind,
    Provider,
    WebhookError,
    text,
)

_KINDS: dict[str, Kind] = {
    "HardBounce": "hard",
    "BadEmailAddress": "hard",
    "ManuallyDeactivated": "hard",
    "SoftBounce": "soft",
    "Transient": "soft",
    "DnsError": "soft",
    "Blocked": "soft",
    "SpamComplaint": "complaint",
}


def check_credentials(authorization: str, username: str, password: str) -> None:
    """Refuse a request whose basic-auth credentials are not the configured ones."""
    scheme, _, encoded = authorization[:1024].partition(" ")
    try:
        given = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        given = b""
    expected = f"{username}:{password}".encode()
    if scheme.lower() != "basic" or not hmac.compare_digest(given, expected):
        raise BadSignature("Postmark credentials do not match")


def parse(body: bytes) -> Delivery:
    """Return the bounce or complaint of one Postmark webhook request."""
    try:
        record = json.loads(body)
    except ValueError as exc:
        raise WebhookError("Postmark body is not JSON") from exc
    if not isinstance(record, dict):
        raise WebhookError("Postmark body is not a JSON object")
    record_type = text(record.get("RecordType"), 40)
    record_id = text(record.get("ID"), 40)
    if not record_id:
        raise WebhookError("Postmark record without an ID")
    delivery = Delivery(Provider.POSTMARK, f"{record_type}:{record_id}")
    kind = _KINDS.get(text(record.get("Type"), 40))
    if record_type == "SpamComplaint":
        kind = "complaint"
    elif record_type != "Bounce":
        kind = None
    email = record.get("Email")
    if kind is None or not isinstance(email, str) or not email:
        delivery.ignored = 1
        return delivery
    delivery.events.append(Event(email[:320], kind, _detail(record), f"postmark:{record_id}"))
    return delivery


def _detail(record: dict[str, Any]) -> str:
    parts = (
        text(record.get("Type"), 40),
        text(record.get("Description")),
        text(record.get("Details")),
    )
    return "Postmark " + " ".join(part for part in parts if part)
