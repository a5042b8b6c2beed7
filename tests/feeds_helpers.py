"""Shared data for the feed and web tests: the sample articles and a hostile one."""

from __future__ import annotations

from datetime import UTC, datetime

from publisher.content.store import ArticleDraft, ArticleStore
from publisher.db import transaction
from publisher.ingest.files import import_files
from publisher.ingest.options import ImportOptions
from publisher.resources import samples_dir
from publisher.site import Site

HOSTILE_TITLE = "Evil ]]> & <script>alert('t')</script> \u202eعربي\u202c 🎉\x07 done"
#: The title as every feed and page shows it: no control characters, no bidi overrides.
HOSTILE_TITLE_SHOWN = "Evil ]]> & <script>alert('t')</script> عربي 🎉 done"
HOSTILE_BODY = (
    "<p onclick=\"alert('p')\">Hi <script>alert('x')</script>"
    '<a href="javascript:alert(1)">click</a> '
    '<a href="/relative/page">relative</a> '
    '<img src="/img/a.png" onerror="alert(2)" alt="pic">'
    "\x01\x0b control ]]> and &amp; שלום עולם 🚀</p>"
    '<picture><source srcset="/img/b.webp 1x, /img/b2.webp 2x" type="image/webp"></picture>'
    '<iframe src="https://evil.example/"></iframe><style>body{}</style>'
)


async def load_samples(site: Site) -> None:
    """Import the shipped sample articles with the site's frozen clock."""
    options = ImportOptions(language=site.settings.site.language, tz=site.settings.tz)
    report = await import_files(
        site.engine, site.settings.site.base_url, [samples_dir()], options, site.clock.now()
    )
    assert not report.failed


async def add_hostile(site: Site) -> str:
    """Store an article full of markup, scripts, controls, RTL text and emoji; return its slug."""
    async with transaction(site.engine) as session:
        store = ArticleStore(session, site.settings.site.base_url)
        result = await store.upsert(
            ArticleDraft(
                title=HOSTILE_TITLE,
                body_html=HOSTILE_BODY,
                language="en",
                slug="hostile",
                summary="Summary <b>bold</b> & \x02 ]]>",
                author="Mallory <script>x</script> & Co",
                tags=["<script>", "Uji & Coba"],
                image_url="/images/lead.png",
                image_caption='Caption "quoted" <b>& more</b>',
                image_credit="Credit & <i>co</i>",
                published_at=datetime(2026, 11, 24, 10, 0, tzinfo=UTC),
            ),
            site.clock.now(),
        )
        return result.article.slug


async def add_numbered(site: Site, count: int, *, tag: str = "seri") -> None:
    """Store ``count`` short articles an hour apart."""
    async with transaction(site.engine) as session:
        store = ArticleStore(session, site.settings.site.base_url)
        for n in range(count):
            await store.upsert(
                ArticleDraft(
                    title=f"Artikel {n}",
                    body_html=f"<p>Isi {n}</p>",
                    language="id",
                    slug=f"artikel-{n}",
                    tags=[tag],
                    author="Andi Saputra" if n % 2 else "",
                    published_at=datetime(2026, 1, 1, n % 24, tzinfo=UTC).replace(day=1 + n // 24),
                ),
                site.clock.now(),
            )
