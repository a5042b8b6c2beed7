"""Send one test copy (of the next digest, or of an announcement) through the outbox."""

from __future__ import annotations

from typing import Any

from publisher import planning
from publisher.db import transaction
from publisher.delivery import announcements, store
from publisher.delivery.editions import current_edition_date, mail_domain
from publisher.delivery.models import MailKind, OutboxStatus
from publisher.delivery.preview import next_digest
from publisher.delivery.worker import deliver
from publisher.errors import DeliveryError, NotFoundError
from publisher.site import Site


async def send_test_copy(site: Site, frequency: str, to: str) -> int:
    """Queue and deliver one test copy to ``to``; return how many articles it carried."""
    # What a new reader in the site language would get next (else a sample of the latest).
    chosen = await next_digest(site, frequency=frequency)
    if not chosen.articles:
        raise NotFoundError("no published articles: nothing to send (add some first)")
    now = site.clock.now()
    local = current_edition_date(site, frequency, now)
    payload = {
        "language": site.settings.site.language,
        "article_ids": [a.id for a in chosen.articles],
        "more_count": chosen.more_count,
        "sample": chosen.sample,
        "frequency": frequency,
        "edition_key": planning.period_key(frequency, local),
        "edition_date": local.isoformat(),
    }
    await _queue_and_deliver(site, to, payload)
    return len(chosen.articles)


async def send_announcement_test(site: Site, announcement_id: int, to: str) -> None:
    """Queue and deliver one test copy of an announcement to ``to`` (subject marked [test])."""
    await announcements.get(site, announcement_id)  # NotFoundError for a wrong id
    await _queue_and_deliver(site, to, {"announcement_id": announcement_id})


async def _queue_and_deliver(site: Site, to: str, payload: dict[str, Any]) -> None:
    now = site.clock.now()
    async with transaction(site.engine) as session:
        row_id = await store.queue_test_copy(session, to, payload, now, domain=mail_domain(site))
    # The same worker as every other message, limited to test copies: a test copy
    # never sends the queued digests along with it.
    report = await deliver(site, kinds=(MailKind.TEST_COPY,), until_idle=True)
    row = await store.row_state(site, row_id)
    if report.paused or row.status != OutboxStatus.SENT:
        raise DeliveryError(
            f"test copy to {to} not sent ({row.status}): {report.paused or row.response}"
        )
