"""No mail after unsubscribing, unless mail.unsubscribe_notice turns the notice on."""

from __future__ import annotations

import httpx
import pytest

from publisher.db import transaction
from publisher.web.subscription import drain
from subscribers import consent
from subscribers.addresses import normalize
from subscribers.repository import Consent, Preferences
from tests.test_subscription_web import BASE, Web, status_of, web

__all__ = ["web"]  # the fixture, shared with the subscription tests


async def _unsubscribe(web: Web, notice: bool) -> None:
    web.site.settings.mail.unsubscribe_notice = notice
    now = web.site.clock.now()
    record = Consent(source="test", at=now, ip="", user_agent="", text="")
    async with transaction(web.site.engine) as session:
        outcome = await consent.subscribe(
            session, normalize("pembaca@example.org"), Preferences.parse(), record, now
        )
        await consent.confirm(session, outcome.subscriber.id, now)
        subscriber_id = outcome.subscriber.id
    token = web.tokens().unsubscribe(subscriber_id)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=web.app), base_url=BASE) as c:
        page = await c.post(f"/unsubscribe/{token}", content=b"List-Unsubscribe=One-Click")
    assert page.status_code == 200
    assert await status_of(web.site, "pembaca@example.org") == "unsubscribed"
    await drain(web.app)


@pytest.mark.parametrize("notice", [False, True])
async def test_unsubscribe_notice_only_when_turned_on(web: Web, notice: bool) -> None:
    await _unsubscribe(web, notice)
    mails = web.mails()
    assert len(mails) == (1 if notice else 0)
    if notice:
        assert "Auto-Submitted" in mails[0]
