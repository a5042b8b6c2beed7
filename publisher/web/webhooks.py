"""POST /webhooks/{provider}: provider bounce and complaint events into the one bounce path.

Each endpoint answers 404 until its provider is configured in ``[webhooks]``. A request
is read up to MAX_BODY bytes, verified by its provider's module in delivery/webhooks,
checked against the deliveries already handled (a replay is acknowledged and ignored),
and its events recorded with subscribers.bounces.record_verified, as `bounces process` does.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from publisher import http, metrics
from publisher.db import transaction
from publisher.delivery.webhooks import (
    MAX_BODY,
    Delivery,
    Provider,
    WebhookError,
    mailgun,
    postmark,
    seen,
    sendgrid,
    ses,
)
from publisher.errors import FetchError
from publisher.site import Site
from subscribers import bounces, repository

log = logging.getLogger("publisher.webhooks")
router = APIRouter()
NO_STORE = {"Cache-Control": "no-store"}


class _TooLarge(WebhookError):
    def __init__(self) -> None:
        super().__init__(f"request body larger than {MAX_BODY} bytes", 413)


def certificates_of(request: Request) -> ses.CertificateCache:
    """Return (creating on first use) the app's SNS certificate cache."""
    found = getattr(request.app.state, "sns_certificates", None)
    if found is None:
        found = request.app.state.sns_certificates = ses.CertificateCache()
    assert isinstance(found, ses.CertificateCache)
    return found


async def _body(request: Request) -> bytes:
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


async def _verify(request: Request, provider: Provider, site: Site) -> Delivery | None:
    """Return the verified delivery, or None when the provider is not configured."""
    settings = site.settings.webhooks
    now = site.clock.now()
    if provider == Provider.SES:
        if not settings.ses_topics:
            return None
        return await ses.parse(
            await _body(request),
            topics=settings.ses_topics,
            now=now,
            max_age=settings.max_age,
            certificates=certificates_of(request),
        )
    if provider == Provider.POSTMARK:
        if not settings.postmark_password:
            return None
        postmark.check_credentials(
            request.headers.get("authorization", ""),
            settings.postmark_username,
            settings.postmark_password,
        )
        return postmark.parse(await _body(request))
    if provider == Provider.MAILGUN:
        if not settings.mailgun_signing_key:
            return None
        return mailgun.parse(
            await _body(request),
            signing_key=settings.mailgun_signing_key,
            now=now,
            max_age=settings.max_age,
        )
    if not settings.sendgrid_public_key:
        return None
    return sendgrid.parse(
        await _body(request),
        signature=request.headers.get(sendgrid.SIGNATURE_HEADER, ""),
        timestamp=request.headers.get(sendgrid.TIMESTAMP_HEADER, ""),
        key=sendgrid.public_key(settings.sendgrid_public_key),
        now=now,
        max_age=settings.max_age,
    )


async def record(site: Site, delivery: Delivery) -> bool:
    """Record a verified delivery's events in one transaction; False when seen before."""
    mail = site.settings.mail
    now = site.clock.now()
    async with transaction(site.engine) as session:
        if not await seen.first_time(session, delivery.provider, delivery.delivery_id, now):
            return False
        for event in delivery.events:
            subscriber = await repository.get_by_email(session, event.email)
            if subscriber is None:
                continue  # not a reader (any more): nothing of ours to suppress
            await bounces.record_verified(
                session,
                subscriber.id,
                event.kind,
                event.detail,
                now,
                mail.soft_bounce_limit,
                mail.soft_bounce_window,
                report_id=event.event_id,
            )
    return True


@router.post("/webhooks/{provider}", include_in_schema=False)
async def webhook(request: Request, provider: str) -> JSONResponse:
    """Verify and record one provider webhook request."""
    site: Site = request.app.state.site
    try:
        chosen = Provider(provider)
    except ValueError:
        return JSONResponse({"error": "unknown provider"}, 404, NO_STORE)
    try:
        delivery = await _verify(request, chosen, site)
    except WebhookError as exc:
        metrics.count_webhook(chosen, "rejected")
        log.warning("webhook %s refused: %s", chosen, exc)
        return JSONResponse({"error": str(exc)}, exc.status, NO_STORE)
    if delivery is None:
        return JSONResponse({"error": "provider not configured"}, 404, NO_STORE)
    if delivery.confirm_url is not None:
        # Confirm before remembering: SNS retries a confirmation we failed to complete.
        answer = await _confirm_subscription(chosen, delivery.confirm_url)
        if answer.status_code == 200:
            await record(site, delivery)
        return answer
    if not await record(site, delivery):
        metrics.count_webhook(chosen, "replay")
        return JSONResponse({"status": "duplicate"}, 200, NO_STORE)
    for event in delivery.events:
        metrics.count_webhook(chosen, event.kind)
    log.info(
        "webhook %s: %d events recorded, %d ignored",
        chosen,
        len(delivery.events),
        delivery.ignored,
    )
    return JSONResponse(
        {"status": "ok", "recorded": len(delivery.events), "ignored": delivery.ignored},
        200,
        NO_STORE,
    )


async def _confirm_subscription(provider: Provider, url: str) -> JSONResponse:
    """Visit an SNS SubscribeURL (already checked to be on an SNS host)."""
    try:
        fetched = await http.fetch(url, max_bytes=64 * 1024, total_seconds=15)
    except FetchError as exc:
        log.warning("webhook %s: subscription confirmation failed: %s", provider, exc)
        return JSONResponse({"error": "could not confirm the subscription"}, 502, NO_STORE)
    metrics.count_webhook(provider, "subscription-confirmed")
    log.info("webhook %s: subscription confirmed (HTTP %d)", provider, fetched.status)
    return JSONResponse({"status": "confirmed"}, 200, NO_STORE)
