"""Amazon SES bounce and complaint notifications delivered by SNS (HTTPS subscription).

SNS signs each message (SignatureVersion 1: SHA1withRSA, 2: SHA256withRSA) over the
"Key\\nValue\\n" lines of fixed fields, with the key of the certificate at SigningCertURL.
That URL must be https on ``sns.<region>.amazonaws.com`` (else anyone could sign with
their own certificate); certificates are fetched once through publisher.http and kept.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections import OrderedDict
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlsplit

from publisher import http
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
from publisher.errors import FetchError
from publisher.keys import verify_with_certificate

_SNS_HOST = re.compile(r"sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?")
_NOTIFICATION = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")
_SUBSCRIPTION = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type")
_TYPES = {
    "Notification": _NOTIFICATION,
    "SubscriptionConfirmation": _SUBSCRIPTION,
    "UnsubscribeConfirmation": _SUBSCRIPTION,
}
_DIGESTS: dict[str, Literal["sha1", "sha256"]] = {"1": "sha1", "2": "sha256"}
MAX_CERTIFICATE = 16 * 1024


def check_sns_url(url: str, what: str) -> str:
    """Return ``url`` if it is https on an SNS host (sns.<region>.amazonaws.com), else refuse."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not _SNS_HOST.fullmatch(parts.hostname or "") or parts.port:
        raise BadSignature(f"{what} is not https://sns.<region>.amazonaws.com/: {text(url, 200)}")
    return url


class CertificateCache:
    """SNS signing certificates by URL, fetched once (SNS rotates to a new URL, not content)."""

    def __init__(self, max_entries: int = 32) -> None:
        self.max_entries = max_entries
        self._certificates: OrderedDict[str, bytes] = OrderedDict()

    def put(self, url: str, pem: bytes) -> None:
        """Remember the certificate found at ``url``."""
        self._certificates[url] = pem
        self._certificates.move_to_end(url)
        while len(self._certificates) > self.max_entries:
            self._certificates.popitem(last=False)

    async def get(self, url: str) -> bytes:
        """Return the certificate at ``url`` (an SNS URL), fetching it the first time."""
        check_sns_url(url, "SigningCertURL")
        found = self._certificates.get(url)
        if found is not None:
            return found
        try:
            fetched = await http.fetch(url, max_bytes=MAX_CERTIFICATE, total_seconds=10)
        except FetchError as exc:
            raise WebhookError(f"cannot fetch the SNS certificate: {exc}", 502) from exc
        # A redirect must not lead somewhere else.
        check_sns_url(fetched.url, "SigningCertURL (after redirects)")
        if fetched.status != 200:
            raise WebhookError(f"SNS certificate: HTTP {fetched.status}", 502)
        self.put(url, fetched.content)
        return fetched.content


def string_to_sign(message: dict[str, Any]) -> bytes:
    """Return the bytes SNS signs for a message of its Type."""
    keys = _TYPES.get(str(message.get("Type")))
    if keys is None:
        raise WebhookError(f"unknown SNS message type {text(message.get('Type'), 50)!r}")
    lines = []
    for key in keys:
        if key in message:
            lines.append(f"{key}\n{message[key]}\n")
        elif key != "Subject":
            raise WebhookError(f"SNS message without {key}")
    return "".join(lines).encode("utf-8")


async def parse(
    body: bytes,
    *,
    topics: list[str],
    now: datetime,
    max_age: timedelta,
    certificates: CertificateCache,
) -> Delivery:
    """Verify an SNS message and return the SES bounces and complaints it carries."""
    try:
        message = json.loads(body)
    except ValueError as exc:
        raise WebhookError("SNS body is not JSON") from exc
    if not isinstance(message, dict) or not all(
        isinstance(value, str) for value in message.values()
    ):
        raise WebhookError("SNS body is not a JSON object of strings")
    if message.get("TopicArn") not in topics:
        raise BadSignature(f"SNS topic not in webhooks.ses_topics: {text(message.get('TopicArn'))}")
    digest = _DIGESTS.get(message.get("SignatureVersion", ""))
    if digest is None:
        raise BadSignature("SNS SignatureVersion must be 1 or 2")
    signed = string_to_sign(message)
    try:
        signature = base64.b64decode(message.get("Signature", ""), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadSignature("SNS Signature is not base64") from exc
    certificate = await certificates.get(message.get("SigningCertURL", ""))
    if not verify_with_certificate(certificate, signature, signed, digest):
        raise BadSignature("SNS signature does not match")
    check_age(_timestamp(message["Timestamp"]), now, max_age)
    delivery = Delivery(Provider.SES, message["MessageId"][:200])
    if message["Type"] == "SubscriptionConfirmation":
        delivery.confirm_url = check_sns_url(message["SubscribeURL"], "SubscribeURL")
        return delivery
    if message["Type"] == "UnsubscribeConfirmation":
        return delivery
    try:
        notification = json.loads(message["Message"])
    except ValueError as exc:
        raise WebhookError("SES notification is not JSON") from exc
    if not isinstance(notification, dict):
        raise WebhookError("SES notification is not a JSON object")
    delivery.events, delivery.ignored = _events(notification)
    return delivery


def _timestamp(value: str) -> datetime:
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise WebhookError(f"SNS Timestamp is not ISO 8601: {text(value, 50)}") from exc


def _events(notification: dict[str, Any]) -> tuple[list[Event], int]:
    """Read SES notifications (notificationType) and event publishing (eventType) alike."""
    kind_name = notification.get("notificationType") or notification.get("eventType")
    if kind_name == "Bounce":
        bounce = notification.get("bounce")
        if not isinstance(bounce, dict):
            raise WebhookError("SES bounce without a bounce object")
        kind: Kind = "hard" if bounce.get("bounceType") == "Permanent" else "soft"
        recipients = bounce.get("bouncedRecipients")
        feedback = text(bounce.get("feedbackId"), 200)
        label = f"SES {bounce.get('bounceType')}/{bounce.get('bounceSubType')}"
    elif kind_name == "Complaint":
        complaint = notification.get("complaint")
        if not isinstance(complaint, dict):
            raise WebhookError("SES complaint without a complaint object")
        kind = "complaint"
        recipients = complaint.get("complainedRecipients")
        feedback = text(complaint.get("feedbackId"), 200)
        label = f"SES complaint ({text(complaint.get('complaintFeedbackType'), 50) or 'abuse'})"
    else:
        return [], 1
    if not isinstance(recipients, list):
        raise WebhookError("SES notification without recipients")
    events = []
    for recipient in recipients[:MAX_EVENTS]:
        if not isinstance(recipient, dict) or not isinstance(recipient.get("emailAddress"), str):
            continue
        detail = " ".join(
            part
            for part in (
                label,
                text(recipient.get("status"), 20),
                text(recipient.get("diagnosticCode")),
            )
            if part
        )
        email = recipient["emailAddress"][:320]
        events.append(Event(email, kind, detail, f"ses:{feedback}:{email.lower()}"))
    return events, 0
