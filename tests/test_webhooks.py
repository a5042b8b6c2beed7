"""Provider webhooks signed with keys generated here, in each provider's documented format."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from fastapi import FastAPI

from publisher.db import transaction
from publisher.delivery.webhooks.ses import CertificateCache, string_to_sign
from publisher.site import Site
from publisher.web.app import create_app
from subscribers import repository, suppression
from subscribers.models import ACTIVE, BOUNCED, COMPLAINED
from subscribers.repository import Consent, Preferences

BASE = "https://news.example.org"
TOPIC = "arn:aws:sns:ap-southeast-1:123456789012:publisher-bounces"
CERT_URL = "https://sns.ap-southeast-1.amazonaws.com/SimpleNotificationService-test.pem"
MAILGUN_KEY = "mailgun-signing-key-0123456789"
POSTMARK = ("postmark", "postmark-password-0123456789")
READERS = ["hard@example.org", "soft@example.org", "angry@example.org", "other@example.org"]


@dataclass
class Hooks:
    site: Site
    app: FastAPI
    client: httpx.AsyncClient
    sns_key: rsa.RSAPrivateKey
    sendgrid_key: ec.EllipticCurvePrivateKey

    async def status(self, email: str) -> tuple[str, str | None]:
        async with transaction(self.site.engine) as session:
            subscriber = await repository.get_by_email(session, email)
            assert subscriber is not None
            return subscriber.status, await suppression.reason(session, email)


def certificate(key: rsa.RSAPrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture
async def hooks(site: Site) -> AsyncIterator[Hooks]:
    sns_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    sendgrid_key = ec.generate_private_key(ec.SECP256R1())
    public = sendgrid_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    hooks = site.settings.webhooks
    hooks.ses_topics = [TOPIC]
    hooks.mailgun_signing_key = MAILGUN_KEY
    hooks.postmark_username, hooks.postmark_password = POSTMARK
    hooks.sendgrid_public_key = base64.b64encode(public).decode()
    now = site.clock.now()
    async with transaction(site.engine) as session:
        for email in READERS:
            await repository.add(
                session, email, Preferences(), Consent("test", now), now, status=ACTIVE
            )
    app = create_app(site)
    cache = CertificateCache()
    cache.put(CERT_URL, certificate(sns_key))  # Amazon's URL; the test's own certificate
    app.state.sns_certificates = cache
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        yield Hooks(site, app, client, sns_key, sendgrid_key)


# --- Amazon SES through SNS ----------------------------------------------------------


def sns_message(
    hooks: Hooks,
    notification: dict[str, Any],
    *,
    version: str = "1",
    message_id: str = "11111111-2222-3333-4444-555555555555",
    cert_url: str = CERT_URL,
    topic: str = TOPIC,
    at: datetime | None = None,
) -> dict[str, str]:
    """Build and sign an SNS Notification as SNS documents it."""
    message = {
        "Type": "Notification",
        "MessageId": message_id,
        "TopicArn": topic,
        "Subject": "Amazon SES Email Event Notification",
        "Message": json.dumps(notification),
        "Timestamp": (at or hooks.site.clock.now()).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "SignatureVersion": version,
        "SigningCertURL": cert_url,
        "UnsubscribeURL": "https://sns.ap-southeast-1.amazonaws.com/?Action=Unsubscribe",
    }
    digest = hashes.SHA1() if version == "1" else hashes.SHA256()  # noqa: S303
    signed = hooks.sns_key.sign(string_to_sign(message), padding.PKCS1v15(), digest)
    message["Signature"] = base64.b64encode(signed).decode()
    return message


def ses_bounce(email: str, bounce_type: str = "Permanent") -> dict[str, Any]:
    return {
        "notificationType": "Bounce",
        "bounce": {
            "bounceType": bounce_type,
            "bounceSubType": "General",
            "bouncedRecipients": [
                {
                    "emailAddress": email,
                    "action": "failed",
                    "status": "5.1.1",
                    "diagnosticCode": "smtp; 550 5.1.1 user unknown",
                }
            ],
            "timestamp": "2026-11-25T00:00:00.000Z",
            "feedbackId": f"feedback-{email}",
        },
        "mail": {"messageId": "abc", "destination": [email]},
    }


async def post_sns(hooks: Hooks, message: dict[str, str]) -> httpx.Response:
    return await hooks.client.post(
        "/webhooks/ses",
        content=json.dumps(message),
        headers={"x-amz-sns-message-type": message["Type"], "content-type": "text/plain"},
    )


async def test_ses_bounce_and_complaint_in_both_signature_versions(hooks: Hooks) -> None:
    bounce = sns_message(hooks, ses_bounce("hard@example.org"), version="1")
    answer = await post_sns(hooks, bounce)
    assert answer.status_code == 200, answer.text
    assert answer.json()["recorded"] == 1
    assert await hooks.status("hard@example.org") == (BOUNCED, suppression.HARD_BOUNCE)
    complaint = {
        "notificationType": "Complaint",
        "complaint": {
            "complainedRecipients": [{"emailAddress": "angry@example.org"}],
            "complaintFeedbackType": "abuse",
            "feedbackId": "complaint-1",
        },
    }
    answer = await post_sns(hooks, sns_message(hooks, complaint, version="2", message_id="m-2"))
    assert answer.status_code == 200, answer.text
    assert await hooks.status("angry@example.org") == (COMPLAINED, suppression.COMPLAINT)
    soft = sns_message(hooks, ses_bounce("soft@example.org", "Transient"), message_id="m-3")
    assert (await post_sns(hooks, soft)).status_code == 200
    assert await hooks.status("soft@example.org") == (ACTIVE, None)  # one soft bounce
    # The same request again is acknowledged and changes nothing.
    replay = await post_sns(hooks, bounce)
    assert replay.json() == {"status": "duplicate"}


async def test_ses_hostile_requests_are_refused(hooks: Hooks) -> None:
    email = "other@example.org"
    tampered = sns_message(hooks, ses_bounce(email), message_id="t-1")
    tampered["Message"] = json.dumps(ses_bounce("hard@example.org"))
    elsewhere = sns_message(
        hooks, ses_bounce(email), message_id="t-2", cert_url="https://sns.evil.example/c.pem"
    )
    lookalike = sns_message(
        hooks,
        ses_bounce(email),
        message_id="t-3",
        cert_url="https://sns.ap-southeast-1.amazonaws.com.evil.example/c.pem",
    )
    plain = sns_message(
        hooks, ses_bounce(email), message_id="t-4", cert_url=CERT_URL.replace("https", "http")
    )
    other_topic = sns_message(
        hooks, ses_bounce(email), message_id="t-5", topic=TOPIC.replace("bounces", "x")
    )
    stale = sns_message(
        hooks, ses_bounce(email), message_id="t-6", at=hooks.site.clock.now() - timedelta(hours=1)
    )
    version = sns_message(hooks, ses_bounce(email), message_id="t-7")
    version["SignatureVersion"] = "3"
    for message in (tampered, elsewhere, lookalike, plain, other_topic, stale, version):
        answer = await post_sns(hooks, message)
        assert answer.status_code == 401, (message["MessageId"], answer.text)
    for body in (b"not json", b"[]", json.dumps({"Type": 1}).encode()):
        answer = await hooks.client.post("/webhooks/ses", content=body)
        assert answer.status_code == 400, answer.text
    huge = await hooks.client.post("/webhooks/ses", content=b"x" * (1024 * 1024 + 1))
    assert huge.status_code == 413
    assert await hooks.status(email) == (ACTIVE, None)
    assert await hooks.status("hard@example.org") == (ACTIVE, None)


# --- Postmark --------------------------------------------------------------------------


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def test_postmark_bounce_complaint_credentials_and_replay(hooks: Hooks) -> None:
    bounce = {
        "RecordType": "Bounce",
        "ID": 4323372036854775807,
        "Type": "HardBounce",
        "TypeCode": 1,
        "Email": "hard@example.org",
        "BouncedAt": "2026-11-25T00:00:00Z",
        "Description": "The server was unable to deliver your message (ex: unknown user).",
        "Details": "smtp;550 5.1.1 unknown user",
        "MessageStream": "outbound",
    }
    wrong = await hooks.client.post(
        "/webhooks/postmark", json=bounce, headers=basic("postmark", "x" * 20)
    )
    assert wrong.status_code == 401
    assert (await hooks.client.post("/webhooks/postmark", json=bounce)).status_code == 401
    ok = await hooks.client.post("/webhooks/postmark", json=bounce, headers=basic(*POSTMARK))
    assert ok.status_code == 200, ok.text
    assert await hooks.status("hard@example.org") == (BOUNCED, suppression.HARD_BOUNCE)
    again = await hooks.client.post("/webhooks/postmark", json=bounce, headers=basic(*POSTMARK))
    assert again.json() == {"status": "duplicate"}
    complaint = {
        "RecordType": "SpamComplaint",
        "ID": 42,
        "Type": "SpamComplaint",
        "TypeCode": 512,
        "Email": "angry@example.org",
    }
    ok = await hooks.client.post("/webhooks/postmark", json=complaint, headers=basic(*POSTMARK))
    assert ok.status_code == 200
    assert await hooks.status("angry@example.org") == (COMPLAINED, suppression.COMPLAINT)
    delivery = {"RecordType": "Delivery", "ID": 43, "Email": "other@example.org"}
    ignored = await hooks.client.post("/webhooks/postmark", json=delivery, headers=basic(*POSTMARK))
    assert ignored.json()["ignored"] == 1


# --- Mailgun ---------------------------------------------------------------------------


def mailgun_body(
    event: dict[str, Any], when: datetime, token: str, key: str = MAILGUN_KEY
) -> dict[str, Any]:
    timestamp = str(int(when.timestamp()))
    signature = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    return {
        "signature": {"timestamp": timestamp, "token": token, "signature": signature},
        "event-data": event,
    }


async def test_mailgun_signature_window_and_replay(hooks: Hooks) -> None:
    now = hooks.site.clock.now()
    failed = {
        "event": "failed",
        "severity": "permanent",
        "recipient": "hard@example.org",
        "id": "G9Bn5sl1TC6nu79C8C0bwg",
        "reason": "bounce",
        "delivery-status": {"code": 550, "message": "5.1.1 The email account does not exist"},
    }
    forged = mailgun_body(failed, now, "a" * 50, key="not-the-key-0123456789")
    assert (await hooks.client.post("/webhooks/mailgun", json=forged)).status_code == 401
    stale = mailgun_body(failed, now - timedelta(minutes=10), "b" * 50)
    assert (await hooks.client.post("/webhooks/mailgun", json=stale)).status_code == 401
    good = mailgun_body(failed, now, "c" * 50)
    answer = await hooks.client.post("/webhooks/mailgun", json=good)
    assert answer.status_code == 200, answer.text
    assert await hooks.status("hard@example.org") == (BOUNCED, suppression.HARD_BOUNCE)
    assert (await hooks.client.post("/webhooks/mailgun", json=good)).json() == {
        "status": "duplicate"
    }
    complained = {"event": "complained", "recipient": "angry@example.org", "id": "x1"}
    answer = await hooks.client.post(
        "/webhooks/mailgun", json=mailgun_body(complained, now, "d" * 50)
    )
    assert answer.status_code == 200
    assert await hooks.status("angry@example.org") == (COMPLAINED, suppression.COMPLAINT)


# --- SendGrid --------------------------------------------------------------------------


def sendgrid_request(
    hooks: Hooks,
    events: list[dict[str, Any]],
    when: datetime,
    key: ec.EllipticCurvePrivateKey | None = None,
) -> tuple[bytes, dict[str, str]]:
    body = (json.dumps(events) + "\r\n").encode()
    timestamp = str(int(when.timestamp()))
    signature = (key or hooks.sendgrid_key).sign(
        timestamp.encode() + body, ec.ECDSA(hashes.SHA256())
    )
    return body, {
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
        "Content-Type": "application/json",
    }


async def test_sendgrid_batch_signature_tampering_and_replay(hooks: Hooks) -> None:
    now = hooks.site.clock.now()
    events = [
        {
            "email": "hard@example.org",
            "event": "bounce",
            "type": "bounce",
            "status": "5.1.1",
            "reason": "550 unknown user",
            "sg_event_id": "e1",
            "timestamp": int(now.timestamp()),
        },
        {
            "email": "angry@example.org",
            "event": "spamreport",
            "sg_event_id": "e2",
            "timestamp": int(now.timestamp()),
        },
        {
            "email": "other@example.org",
            "event": "open",
            "sg_event_id": "e3",
            "timestamp": int(now.timestamp()),
        },
    ]
    body, headers = sendgrid_request(hooks, events, now)
    tampered = body.replace(b"hard@", b"soft@")
    assert (
        await hooks.client.post("/webhooks/sendgrid", content=tampered, headers=headers)
    ).status_code == 401
    stranger = ec.generate_private_key(ec.SECP256R1())
    forged_body, forged = sendgrid_request(hooks, events, now, key=stranger)
    assert (
        await hooks.client.post("/webhooks/sendgrid", content=forged_body, headers=forged)
    ).status_code == 401
    old_body, old = sendgrid_request(hooks, events, now - timedelta(minutes=6))
    assert (
        await hooks.client.post("/webhooks/sendgrid", content=old_body, headers=old)
    ).status_code == 401
    missing = await hooks.client.post("/webhooks/sendgrid", content=body)
    assert missing.status_code == 401
    answer = await hooks.client.post("/webhooks/sendgrid", content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"status": "ok", "recorded": 2, "ignored": 1}
    assert await hooks.status("hard@example.org") == (BOUNCED, suppression.HARD_BOUNCE)
    assert await hooks.status("angry@example.org") == (COMPLAINED, suppression.COMPLAINT)
    assert await hooks.status("other@example.org") == (ACTIVE, None)
    replay = await hooks.client.post("/webhooks/sendgrid", content=body, headers=headers)
    assert replay.json() == {"status": "duplicate"}


async def test_unconfigured_and_unknown_providers_answer_404(site: Site) -> None:
    app = create_app(site)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        for provider in ("ses", "postmark", "mailgun", "sendgrid", "sparkpost"):
            answer = await client.post(f"/webhooks/{provider}", content=b"{}")
            assert answer.status_code == 404, provider
