"""In-memory cache of rendered feeds and pages, dropped when the content version moves.

A background task reads ``site_state.content_version`` once a second (one indexed
row), so a change made by any process — the CLI, a worker, another server — shows
up within about a second, and no request ever rebuilds a document that is cached.
The same task publishes scheduled drafts when their time comes (it knows the next
due time, re-read whenever the version moves), so a server alone publishes on time.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime

from publisher.content import publishing
from publisher.content.store import ArticleStore
from publisher.db import transaction
from publisher.site import Site

log = logging.getLogger(__name__)

#: Bodies smaller than this go uncompressed; gzip would not pay for its header.
MIN_GZIP = 256
#: Bodies larger than this are hashed and compressed in a worker thread, off the event loop.
THREAD_BYTES = 64 * 1024


@dataclass(frozen=True)
class Cached:
    """A rendered body with its validators and a gzip copy made once."""

    body: bytes
    gzipped: bytes | None
    media_type: str
    etag: str
    gzip_etag: str
    last_modified: datetime
    last_modified_header: str

    @classmethod
    def make(cls, body: bytes, media_type: str, last_modified: datetime) -> Cached:
        """Hash, compress and date a body once, at build time."""
        digest = hashlib.sha256(body).hexdigest()[:32]
        # mtime=0 keeps the gzip bytes (and so their ETag) stable across rebuilds.
        gzipped = gzip.compress(body, compresslevel=6, mtime=0) if len(body) >= MIN_GZIP else None
        when = last_modified.astimezone(UTC).replace(microsecond=0)
        return cls(
            body=body,
            gzipped=gzipped,
            media_type=media_type,
            etag=f'"{digest}"',
            gzip_etag=f'"{digest}-gzip"',
            last_modified=when,
            last_modified_header=format_datetime(when, usegmt=True),
        )


Builder = Callable[[], Awaitable[tuple[bytes, str, datetime] | None]]


class ContentCache:
    """Map a key (a path) to its rendered body for the current content version."""

    def __init__(
        self,
        site: Site,
        *,
        poll_interval: float = 1.0,
        max_entries: int = 4096,
        max_missing: int = 1024,
    ) -> None:
        self.site = site
        self.poll_interval = poll_interval
        self.max_entries = max_entries
        self.max_missing = max_missing
        self.version: int | None = None
        #: How many documents were built (a benchmark proves it stays still under load).
        self.builds = 0
        self._generation = 0
        self._entries: OrderedDict[str, Cached] = OrderedDict()
        # "Not found" answers live apart, so requests for made-up URLs can only evict
        # each other, never a real page.
        self._missing: OrderedDict[str, None] = OrderedDict()
        self._locks: dict[str, asyncio.Lock] = {}
        self._served: dict[str, tuple[str, datetime]] = {}
        self._task: asyncio.Task[None] | None = None
        self._listeners: list[Callable[[int], None]] = []
        #: When the next scheduled draft is due (None: nothing scheduled).
        self.next_publish: datetime | None = None
        self._schedule_stale = False

    def on_change(self, listener: Callable[[int], None]) -> None:
        """Call ``listener(version)`` whenever the content version moves after start."""
        self._listeners.append(listener)

    async def read_version(self) -> int:
        """Read the content version from the database."""
        async with transaction(self.site.engine) as session:
            return await ArticleStore(session, self.site.settings.site.base_url).version()

    async def start(self) -> None:
        """Read the version and start polling it."""
        self.version = await self.read_version()
        await self._read_next_publish()
        self._task = asyncio.create_task(self._poll(), name="content-version-poll")

    async def _read_next_publish(self) -> None:
        self.next_publish = await publishing.next_due(
            self.site.engine, self.site.settings.site.base_url
        )

    async def publish_due(self) -> list[str]:
        """Publish the scheduled drafts that are due now (they move the version)."""
        due = self.next_publish
        if due is None or due > self.site.clock.now():
            return []
        published = await publishing.publish_due(
            self.site.engine, self.site.settings.site.base_url, self.site.clock.now()
        )
        await self._read_next_publish()
        if published:
            log.info("published scheduled articles: %s", ", ".join(published))
        return published

    async def stop(self) -> None:
        """Stop polling."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval)
            try:
                await self.publish_due()
                version = await self.read_version()
                self.check(version)
                if self._schedule_stale:
                    # Any change (here, by a request's check(), or elsewhere) may have
                    # scheduled an article: learn the next due time again.
                    self._schedule_stale = False
                    await self._read_next_publish()
            except Exception:  # keep serving what we have while the database is away
                log.exception("cannot read the content version")

    def check(self, version: int) -> bool:
        """Drop everything if ``version`` differs from the one cached; tell whether it did."""
        if version == self.version:
            return False
        self.version = version
        self.invalidate()
        self._schedule_stale = True
        for listener in self._listeners:
            listener(version)
        return True

    def invalidate(self) -> None:
        """Forget every cached body."""
        self._generation += 1
        self._entries.clear()
        self._missing.clear()

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: str, build: Builder) -> Cached | None:
        """Return the cached body for ``key``, building it once if missing (None = not found)."""
        hit, found = self._lookup(key)
        if hit:
            return found
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            hit, found = self._lookup(key)
            if hit:
                return found
            generation = self._generation
            self.builds += 1
            built = await build()
            cached = None if built is None else await self._validated(key, *built)
            # A body built while the content changed may be stale: serve it, don't keep it.
            if generation == self._generation:
                self._keep(key, cached)
        self._locks.pop(key, None)
        return cached

    def _lookup(self, key: str) -> tuple[bool, Cached | None]:
        """Return (known, body): known with None means a cached "not found"."""
        if key in self._entries:
            self._entries.move_to_end(key)
            return True, self._entries[key]
        if key in self._missing:
            self._missing.move_to_end(key)
            return True, None
        return False, None

    def _keep(self, key: str, cached: Cached | None) -> None:
        if cached is None:
            self._missing[key] = None
            if len(self._missing) > self.max_missing:
                self._missing.popitem(last=False)
            return
        self._entries[key] = cached
        if len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    async def _validated(
        self, key: str, body: bytes, media_type: str, modified: datetime
    ) -> Cached:
        if len(body) > THREAD_BYTES:
            cached = await asyncio.to_thread(Cached.make, body, media_type, modified)
        else:
            cached = Cached.make(body, media_type, modified)
        previous = self._served.get(key)
        if (
            previous is not None
            and previous[0] != cached.etag
            and cached.last_modified <= previous[1]
        ):
            # The body changed but its newest date did not move (an article was removed):
            # move Last-Modified on, or If-Modified-Since clients would keep the old copy.
            now = self.site.clock.now()
            cached = Cached.make(body, media_type, max(now, previous[1]))
        self._served[key] = (cached.etag, cached.last_modified)
        if len(self._served) > 4 * self.max_entries:
            self._served.clear()
        return cached
