"""Build each job's message: digests render once per variant; notices come from cached
templates; every message is personalized per reader."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import date
from typing import Any

import sqlalchemy as sa

from publisher.config import Settings
from publisher.content.models import PUBLISHED, Article
from publisher.db import transaction
from publisher.delivery import announcements
from publisher.delivery.archive import sent_on
from publisher.delivery.models import Edition, EditionVariant, MailKind
from publisher.delivery.smtp import sender_address
from publisher.delivery.store import Job
from publisher.errors import ConfigError, NotFoundError
from publisher.render import transactional
from publisher.render.announcement import AnnouncementContent, TooLarge, render_announcement
from publisher.render.digest import Digest, render_digest
from publisher.render.i18n import choose_language
from publisher.render.message import MessageTemplate, Recipient, build_digest_template
from publisher.site import Site
from subscribers.errors import InvalidInput, TokenError
from subscribers.tokens import Tokens
from subscribers.verp import ReturnPaths


def reader_links(site: Site) -> tuple[Tokens, str]:
    """Return the token signer and base URL for unsubscribe and preference links."""
    try:
        tokens = Tokens(site.settings.web.secret_key, clock=site.clock)
    except TokenError as exc:
        raise ConfigError(f"web.secret_key: {exc} (digests need signed unsubscribe links)") from exc
    return tokens, site.settings.site.base_url


def return_paths(settings: Settings) -> ReturnPaths:
    """Return the signer of envelope senders: mail.return_path, else the From address."""
    address = settings.mail.return_path or sender_address(settings.mail.from_)
    key = "mail.return_path" if settings.mail.return_path else "mail.from"
    try:
        return ReturnPaths(settings.web.secret_key, address)
    except TokenError as exc:
        raise ConfigError(f"web.secret_key: {exc} (bounce tokens are signed with it)") from exc
    except InvalidInput as exc:
        raise ConfigError(f"{key}: {exc}") from exc


class Composer:
    """Cache one MessageTemplate per variant (and test copy) and personalize it per job."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.tokens, self.base_url = reader_links(site)
        self.return_paths = return_paths(site.settings)
        self._templates: dict[int, MessageTemplate | None] = {}
        self._copies: dict[int, MessageTemplate | None] = {}

    async def prepare(self, jobs: list[Job]) -> None:
        """Render every variant and test copy the jobs need, not rendered yet (off the loop)."""
        variants = {j.variant_id: j.kind for j in jobs if j.kind in _EDITION_KINDS and j.variant_id}
        for variant_id in sorted(variants.keys() - self._templates.keys()):
            if variants[variant_id] == MailKind.ANNOUNCEMENT:
                self._templates[variant_id] = await self._announcement(variant_id)
                continue
            digest = await self._digest(variant_id)
            if digest is None:
                self._templates[variant_id] = None
                continue
            self._templates[variant_id] = await asyncio.to_thread(self._build, digest, False)
        for job in jobs:
            if job.kind == MailKind.TEST_COPY and job.row_id not in self._copies:
                if (job.payload or {}).get("announcement_id"):
                    self._copies[job.row_id] = await self._announcement_copy(job.payload or {})
                    continue
                copy = await self._test_copy(job.payload or {})
                self._copies[job.row_id] = (
                    None if copy is None else await asyncio.to_thread(self._build, *copy)
                )

    def _build(self, digest: Digest, sample: bool) -> MessageTemplate:
        compiled = render_digest(self.site.settings, digest)
        if sample:
            compiled = replace(compiled, subject=f"[sample] {compiled.subject}")
        return build_digest_template(self.site.settings, compiled, clock=self.site.clock)

    def _build_announcement(self, content: AnnouncementContent, test: bool) -> MessageTemplate:
        compiled = render_announcement(self.site.settings, content)
        if test:
            compiled = replace(compiled, subject=f"[test] {compiled.subject}")
        return build_digest_template(self.site.settings, compiled, clock=self.site.clock)

    async def _announcement(self, variant_id: int) -> MessageTemplate | None:
        async with transaction(self.site.engine) as session:
            variant = await session.get(EditionVariant, variant_id)
        if variant is None:
            return None
        found = await announcements.for_edition(self.site, variant.edition_id)
        if found is None:
            return None
        content = announcements.content_of(self.site, found)
        try:
            return await asyncio.to_thread(self._build_announcement, content, False)
        except TooLarge:
            return None  # refused when written; a changed template may still overflow

    async def _announcement_copy(self, payload: dict[str, Any]) -> MessageTemplate | None:
        try:
            found = await announcements.get(self.site, int(payload["announcement_id"]))
        except (NotFoundError, ValueError):
            return None
        content = announcements.content_of(self.site, found)
        try:
            return await asyncio.to_thread(self._build_announcement, content, True)
        except TooLarge:
            return None

    async def _articles(self, ids: list[int]) -> list[Article]:
        async with transaction(self.site.engine) as session:
            found = {
                a.id: a
                for a in await session.scalars(
                    sa.select(Article).where(Article.id.in_(ids)).where(Article.status == PUBLISHED)
                )
            }
        return [found[i] for i in ids if i in found]

    async def _digest(self, variant_id: int) -> Digest | None:
        async with transaction(self.site.engine) as session:
            variant = await session.get(EditionVariant, variant_id)
            if variant is None:
                return None
            edition = await session.get(Edition, variant.edition_id)
            if edition is None:
                return None
        articles = await self._articles([int(i) for i in variant.article_ids])
        if not articles:
            return None  # every article was withdrawn after the edition was planned
        return Digest(
            articles=articles,
            language=variant.language,
            edition_key=edition.period_key,
            edition_date=sent_on(edition, self.site.settings.tz),
            tz=self.site.settings.tz,
            more_count=variant.more_count,
            frequency=edition.frequency,
        )

    async def _test_copy(self, payload: dict[str, Any]) -> tuple[Digest, bool] | None:
        articles = await self._articles([int(i) for i in payload.get("article_ids", [])])
        if not articles:
            return None
        digest = Digest(
            articles=articles,
            language=str(payload.get("language") or self.site.settings.site.language),
            edition_key=str(payload.get("edition_key", "")),
            edition_date=date.fromisoformat(str(payload.get("edition_date"))),
            tz=self.site.settings.tz,
            more_count=int(payload.get("more_count", 0)),
            frequency=str(payload.get("frequency", "daily")),
        )
        return digest, bool(payload.get("sample"))

    def message(self, job: Job) -> bytes | None:
        """Return the job's complete message, or None when it has nothing left to say."""
        if job.kind in _EDITION_KINDS:
            template = self._templates.get(job.variant_id or 0)
        elif job.kind == MailKind.TEST_COPY:
            template = self._copies.pop(job.row_id, None)
        else:
            return self._notice(job)
        if template is None:
            return None
        # A test copy belongs to no subscriber: its links lead to "not found".
        subscriber = job.subscriber_id or 0
        return template.personalize(
            Recipient(
                email=job.email,
                name=job.name,
                unsubscribe_url=f"{self.base_url}/unsubscribe/{self.tokens.unsubscribe(subscriber)}",
                preferences_url=f"{self.base_url}/preferences/{self.tokens.preferences(subscriber)}",
                message_id=job.message_id,
                language=template.language,
                mail_token=self.tokens.mail_unsubscribe(subscriber),
                bounce_token=self.return_paths.token(subscriber, _message_ref(job)),
            )
        )

    def _notice(self, job: Job) -> bytes:
        """Fill in one notice of the subscription flow (links are signed at sending time)."""
        settings = self.site.settings
        base, tokens, subscriber = self.base_url, self.tokens, job.subscriber_id or 0
        language = choose_language(job.language, settings.site.language, domain="email")
        common: dict[str, Any] = {
            "email": job.email,
            "name": job.name,
            "language": language,
            "message_id": job.message_id,
            "bounce_token": self.return_paths.token(subscriber, _message_ref(job)),
        }
        notice = transactional.Notice(job.kind)
        urls: dict[str, str]
        if notice is transactional.Notice.CONFIRMATION:
            urls = {"action_url": f"{base}/confirm/{tokens.confirm(subscriber)}"}
        elif notice is transactional.Notice.UNSUBSCRIBED:
            urls = {"action_url": f"{base}/subscribe"}
        else:
            urls = {
                "preferences_url": f"{base}/preferences/{tokens.preferences(subscriber)}",
                "unsubscribe_url": f"{base}/unsubscribe/{tokens.unsubscribe(subscriber)}",
            }
        return transactional.build_notice(settings, notice, urls=urls, **common)

    def return_path(self, job: Job) -> str:
        """Return the job's envelope sender: the VERP address naming its reader and message."""
        if job.kind == MailKind.TEST_COPY or not job.subscriber_id:
            return self.return_paths.plain  # a test copy answers no reader
        return self.return_paths.address(job.subscriber_id, _message_ref(job))


#: The message part of each notice's bounce token (digests use "e<edition id>").
_NOTICE_REF: dict[str, str] = {
    MailKind.CONFIRMATION: "c",
    MailKind.ALREADY_SUBSCRIBED: "a",
    MailKind.UNSUBSCRIBED: "u",
    MailKind.WELCOME: "w",
    MailKind.TEST_COPY: "t",
}


#: Kinds rendered once per edition variant and personalized per reader.
_EDITION_KINDS = (MailKind.DIGEST, MailKind.ANNOUNCEMENT)


def _message_ref(job: Job) -> str:
    if job.kind in _EDITION_KINDS:
        return f"e{job.edition_id}"
    return _NOTICE_REF[job.kind]
