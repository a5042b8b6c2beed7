"""Mailgun event webhooks: HMAC-SHA256 of timestamp + token with the webhook signing key."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from publisher.delivery.webhooks import (
    BadSignature,
    Delivery,
    Event,
    Kind,
    Provider,
    WebhookError,
    check_age,
    text,
)


def signature_for(signing_key: str, timestamp: str, token: str) -> str:
    """Return the hex signature Mailgun computes for a timestamp and token."""
    message = (timestamp + token).encode()
    return hmac.new(signing_key.encode(), message, hashlib.sha256).hexdigest()


def parse(body: bytes, *, signing_key: str, now: datetime, max_age: timedelta) -> Delivery:
    """Verify one Mailgun webhook request and return its bounce or complaint."""
    try:
        payload = json.loads(body)
    except ValueError as exc:
        raise WebhookError("Mailgun body is not JSON") from exc
    signed = payload.get("signature") if isinstance(payload, dict) else None
    if not isinstance(signed, dict):
        raise WebhookError("Mailgun body without a signature object")
    timestamp, token, signature = (
        str(signed.get(key, ""))[:200] for key in ("timestamp", "token", "signature")
    )
    if not timestamp.isdigit() or not token:
        raise BadSignature("Mailgun signature without timestamp or token")
    expected = signature_for(signing_key, timestamp, token)
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise BadSignature("Mailgun signature does not match")
    check_age(datetime.fromtimestamp(int(timestamp[:12]), UTC), now, max_age)
    delivery = Delivery(Provider.MAILGUN, token)
    data = payload.get("event-data")
    if not isinstance(data, dict):
        raise WebhookError("Mailgun body without event-data")
    kind = _kind(data)
    email = data.get("recipient")
    if kind is None or not isinstance(email, str) or not email:
        delivery.ignored = 1
        return delivery
    event_id = text(data.get("id"), 200) or token
    delivery.events.append(Event(email[:320], kind, _detail(data), f"mailgun:{event_id}"))
    return delivery


def _kind(data: dict[str, Any]) -> Kind | None:
    event = data.get("event")
    if event == "complained":
        return "complaint"
    if event == "failed":
        return "hard" if data.get("severity") == "permanent" else "soft"
    return None


def _detail(data: dict[str, Any]) -> str:
    status = data.get("delivery-status")
    status = status if isinstance(status, dict) else {}
    parts = (
        text(data.get("severity"), 20),
        text(status.get("code"), 10),
        text(status.get("message") or status.get("description")),
        text(data.get("reason"), 50),
    )
    return "Mailgun " + " ".join(part for part in parts if part)
