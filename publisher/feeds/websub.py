"""Tell a WebSub hub that feeds changed: POST hub.mode=publish, in the background, retried."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from publisher.config import Settings
from publisher.errors import FetchError
from publisher.feeds.model import FILE_NAMES, FeedPath, Scope
from publisher.http import FormPoster

log = logging.getLogger(__name__)


def site_feed_urls(settings: Settings) -> list[str]:
    """Return the URLs of the site-wide feeds, the ones a hub is told about."""
    base = settings.site.base_url
    return [f"{base}/{FeedPath(Scope(), fmt).path()}" for fmt in FILE_NAMES]


async def ping(
    client: FormPoster,
    hub: str,
    url: str,
    *,
    attempts: int = 5,
    delay: float = 2.0,
) -> bool:
    """POST one publish notification, retrying failures with doubling delays; never raise."""
    for attempt in range(1, attempts + 1):
        try:
            status = await client.post(hub, {"hub.mode": "publish", "hub.url": url})
            if status < 300:
                return True
            problem = f"HTTP {status}"
            if 400 <= status < 500 and status != 429:
                log.warning("WebSub hub %s refused %s: %s", hub, url, problem)
                return False
        except FetchError as exc:
            problem = str(exc)
        log.info("WebSub ping %s for %s failed (%s), attempt %d", hub, url, problem, attempt)
        if attempt < attempts:
            await asyncio.sleep(delay * 2 ** (attempt - 1))
    log.warning("WebSub hub %s not reached for %s after %d attempts", hub, url, attempts)
    return False


class Pinger:
    """Send publish pings from a background task; repeated changes coalesce into one round."""

    def __init__(
        self, settings: Settings, *, attempts: int = 5, delay: float = 2.0, timeout: float = 10.0
    ) -> None:
        self.settings = settings
        self.hub = settings.web.websub_hub
        self.attempts = attempts
        self.delay = delay
        self.timeout = timeout
        self.sent = 0
        self._pending: dict[str, None] = {}
        self._task: asyncio.Task[None] | None = None
        self._client: FormPoster | None = None

    def publish_site(self) -> None:
        """Queue pings for the site-wide feeds."""
        self.publish(site_feed_urls(self.settings))

    def publish(self, urls: Sequence[str]) -> None:
        """Queue pings for ``urls`` and return at once (needs a running event loop)."""
        if not self.hub:
            return
        self._pending.update(dict.fromkeys(urls))
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="websub-ping")

    async def _run(self) -> None:
        if self._client is None:
            self._client = FormPoster(timeout=self.timeout)
        while self._pending:
            urls = list(self._pending)
            self._pending.clear()
            results = await asyncio.gather(
                *(
                    ping(self._client, self.hub, url, attempts=self.attempts, delay=self.delay)
                    for url in urls
                )
            )
            self.sent += sum(results)

    async def wait(self) -> None:
        """Wait until the queued pings are done (tests and the CLI use it)."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    async def aclose(self) -> None:
        """Stop pinging and close the HTTP client."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._client is not None:
            await self._client.aclose()
            self._client = None
