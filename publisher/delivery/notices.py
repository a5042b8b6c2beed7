"""The subscription flow's mail: queued with the change that calls for it, sent by the worker.

A confirmation, "already subscribed", welcome or unsubscribe notice is an outbox row
written in the same transaction as the subscriber change, so it is never lost: whoever
delivers next (this process's NoticeSender inside `publisher serve`, `publisher worker`,
`digest send`) sends it with the same retries, pauses and bounce handling as a digest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from publisher.delivery import store
from publisher.delivery.editions import mail_domain
from publisher.delivery.models import TRANSACTIONAL, MailKind
from publisher.delivery.worker import DeliveryReport, deliver
from publisher.errors import LockedError
from publisher.site import Site

log = logging.getLogger("publisher.notices")

#: How often `publisher serve` looks for notices nobody poked it about (other processes'
#: requests, retries coming due).
POLL_SECONDS = 10.0


async def queue(session: AsyncSession, site: Site, kind: MailKind, subscriber_id: int) -> None:
    """Queue one notice to a subscriber in the caller's transaction."""
    from subscribers import repository

    subscriber = await repository.get(session, subscriber_id)
    if subscriber is None:
        return
    await store.queue_notice(
        session,
        kind,
        subscriber.id,
        subscriber.email,
        site.clock.now(),
        domain=mail_domain(site),
    )


async def deliver_notices(site: Site) -> DeliveryReport | None:
    """Send the queued notices now; None when another sender holds the SQLite send lock
    (it delivers every kind, notices included)."""
    try:
        return await deliver(site, kinds=TRANSACTIONAL, until_idle=True)
    except LockedError:
        return None


class NoticeSender:
    """Deliver notices from inside `publisher serve`: when poked, and every POLL_SECONDS.

    Each round is an until-idle delivery run, so on SQLite the send lock is held only
    while there is something to send and `digest send` can run beside `serve`. When the
    SMTP server is down the round pauses and the next one starts when the pause ends.
    """

    def __init__(self, site: Site, *, poll_seconds: float = POLL_SECONDS) -> None:
        self.site = site
        self.poll_seconds = poll_seconds
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._round = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    def poke(self) -> None:
        """Deliver soon: something was just queued."""
        self._wake.set()

    async def deliver_now(self) -> DeliveryReport | None:
        """Run one round (rounds never overlap within the process)."""
        async with self._round:
            return await deliver_notices(self.site)

    async def start(self) -> None:
        """Start the background loop."""
        if self._task is None:
            self._stop.clear()
            self._task = asyncio.create_task(self._run(), name="publisher-notices")

    async def stop(self) -> None:
        """Stop after the round in progress."""
        self._stop.set()
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            wait = self.poll_seconds
            try:
                report = await self.deliver_now()
            except Exception:
                log.exception("delivering notices failed; trying again in %.0f s", wait)
                report = None
            if report is not None and report.paused_until is not None:
                left = report.paused_until - self.site.clock.now()
                wait = min(wait, max(left, timedelta(seconds=0.5)).total_seconds())
                log.warning("notices paused: %s", report.paused)
            if self._stop.is_set():
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=wait)
