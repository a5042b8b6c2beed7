"""SendGrid signed event webhooks: ECDSA (P-256, SHA-256) over timestamp + raw body."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from publisher.delivery.webhooks import (
    MAX_EVENTS,
    BadSignature,
    Delivery,
    Event,
    Kind,
    Provider,
    WebhookError,
    check_age,
    text,
)
from publisher.errors import InputError
from publisher.keys import EcdsaPublicKey, load_ecdsa_public_key, verify_ecdsa_sha256

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"


def public_key(text_key: str) -> EcdsaPublicKey:
    """Load the verification key as SendGrid shows it (base64 DER, or PEM)."""
    try:
        return load_ecdsa_public_key(text_key)
    except InputError as exc:
        raise WebhookError(f"webhooks.sendgrid_public_key: {exc}", 500) from exc


def parse(
    body: bytes,
    *,
    signature: str,
    timestamp: str,
    key: EcdsaPublicKey,
    now: datetime,
    max_age: timedelta,
) -> Delivery:
    """Verify one SendGrid batch and return its bounces and spam reports."""
    timestamp = timestamp.strip()[:20]
    if not timestamp.isdigit():
        raise BadSignature(f"missing or invalid {TIMESTAMP_HEADER}")
    try:
        raw_signature = base64.b64decode(signature.strip()[:400], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadSignature(f"{SIGNATURE_HEADER} is not base64") from exc
    if not verify_ecdsa_sha256(key, raw_signature, timestamp.encode() + body):
        raise BadSignature("SendGrid signature does not match")
    check_age(datetime.fromtimestamp(int(timestamp[:12]), UTC), now, max_age)
    try:
        batch = json.loads(body)
    except ValueError as exc:
        raise WebhookError("SendGrid body is not JSON") from exc
    if not isinstance(batch, list):
        raise WebhookError("SendGrid body is not a JSON array")
    delivery = Delivery(Provider.SENDGRID, hashlib.sha256(raw_signature).hexdigest())
    for item in batch[:MAX_EVENTS]:
        kind = _kind(item) if isinstance(item, dict) else None
        email = item.get("email") if isinstance(item, dict) else None
        if kind is None or not isinstance(email, str) or not email:
            delivery.ignored += 1
            continue
        event_id = text(item.get("sg_event_id"), 200) or f"{timestamp}:{email.lower()}"
        delivery.events.append(Event(email[:320], kind, _detail(item), f"sendgrid:{event_id}"))
    return delivery


def _kind(item: dict[str, Any]) -> Kind | None:
    event = item.get("event")
    if event == "spamreport":
        return "complaint"
    if event == "bounce":
        # SendGrid's "blocked" is a refusal of this message, not of the address.
        return "soft" if item.get("type") == "blocked" else "hard"
    return None


def _detail(item: dict[str, Any]) -> str:
    parts = (text(item.get("event"), 20), text(item.get("status"), 20), text(item.get("reason")))
    return "SendGrid " + " ".join(part for part in parts if part)
