"""Build each reader's message: render once per variant, personalize per subscriber."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa

from publisher.content.models import PUBLISHED, Article
from publisher.db import transaction
from publisher.delivery.archive import sent_on
from publisher.delivery.models import Edition, EditionVariant
from publisher.delivery.outbox import Job
from publisher.errors import ConfigError
from publisher.render.digest import Digest, render_digest
from publisher.render.message import MessageTemplate, Recipient, build_digest_template
from publisher.site import Site
from subscribers.errors import TokenError
from subscribers.tokens import Tokens


def reader_links(site: Site) -> tuple[Tokens, str]:
    """Return the token signer and base URL for unsubscribe and preference links."""
    try:
        tokens = Tokens(site.settings.web.secret_key)
    except TokenError as exc:
        raise ConfigError(f"web.secret_key: {exc} (digests need signed unsubscribe links)") from exc
    return tokens, site.settings.site.base_url


class Composer:
    """Cache one MessageTemplate per variant and personalize it for each job."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.tokens, self.base_url = reader_links(site)
        self._templates: dict[int, MessageTemplate | None] = {}

    async def prepare(self, variant_ids: set[int]) -> None:
        """Render every variant not rendered yet (off the event loop)."""
        for variant_id in sorted(variant_ids - self._templates.keys()):
            digest = await self._digest(variant_id)
            if digest is None:
                self._templates[variant_id] = None
                continue
            self._templates[variant_id] = await asyncio.to_thread(self._build, digest)

    def _build(self, digest: Digest) -> MessageTemplate:
        compiled = render_digest(self.site.settings, digest)
        return build_digest_template(self.site.settings, compiled, clock=self.site.clock)

    async def _digest(self, variant_id: int) -> Digest | None:
        async with transaction(self.site.engine) as session:
            variant = await session.get(EditionVariant, variant_id)
            if variant is None:
                return None
            edition = await session.get(Edition, variant.edition_id)
            if edition is None:
                return None
            ids = [int(i) for i in variant.article_ids]
            found = {
                a.id: a
                for a in await session.scalars(
                    sa.select(Article).where(Article.id.in_(ids)).where(Article.status == PUBLISHED)
                )
            }
        articles = [found[i] for i in ids if i in found]
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

    def message(self, job: Job) -> bytes | None:
        """Return the job's complete message, or None when its variant has nothing left."""
        template = self._templates.get(job.variant_id)
        if template is None:
            return None
        subscriber = job.subscriber_id
        return template.personalize(
            Recipient(
                email=job.email,
                name=job.name,
                unsubscribe_url=f"{self.base_url}/unsubscribe/{self.tokens.unsubscribe(subscriber)}",
                preferences_url=f"{self.base_url}/preferences/{self.tokens.preferences(subscriber)}",
                message_id=job.message_id,
                language=template.language,
                mail_token=self.tokens.mail_unsubscribe(subscriber),
            )
        )
