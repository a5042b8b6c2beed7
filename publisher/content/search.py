"""Title search: words normalized here, indexed by SQLite FTS5 or a PostgreSQL GIN index.

Both databases index the same words, cut by :func:`title_words` (case-folded, diacritics
removed, letters and digits only), and a query matches an article when each of its words
begins a word of the title. So the two backends answer alike, and a query cannot carry
FTS5 or tsquery syntax: it is rebuilt from plain words before it reaches the database.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from publisher.content.models import Article, ArticleSearch
from publisher.errors import InputError

#: The longest search text accepted (characters, before normalizing).
MAX_QUERY_CHARS = 200
#: At most this many words in one search (each is a prefix lookup).
MAX_QUERY_WORDS = 8
#: Longer words are cut to this length in the index and in queries alike.
MAX_WORD_CHARS = 60

#: SQLite's full-text table: rowid is the article id, ``words`` its title words.
FTS_TABLE = "article_search_fts"
_FTS = sa.table(FTS_TABLE, sa.column("rowid", sa.Integer), sa.column("words", sa.Text))
_WORD = re.compile(r"[^\W_]+")


class SearchError(InputError):
    """A search text the list cannot run (too long, too many words, no words)."""


def title_words(text: str) -> list[str]:
    """Split text into search words: case-folded, without diacritics, letters and digits."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(char for char in decomposed if not unicodedata.combining(char))
    return [word[:MAX_WORD_CHARS] for word in _WORD.findall(plain.casefold())]


@dataclass(frozen=True)
class TitleQuery:
    """A parsed search: the words each matching title must have a word starting with."""

    words: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> TitleQuery:
        """Check the limits and normalize ``text``, raising SearchError naming the problem."""
        if len(text) > MAX_QUERY_CHARS:
            raise SearchError(
                f"search text is {len(text)} characters long; at most {MAX_QUERY_CHARS}"
            )
        words = tuple(dict.fromkeys(title_words(text)))
        if not words:
            raise SearchError("search text has no letters or digits")
        if len(words) > MAX_QUERY_WORDS:
            raise SearchError(f"search text has {len(words)} words; at most {MAX_QUERY_WORDS}")
        return cls(words)

    def fts5(self) -> str:
        """Return the FTS5 MATCH expression: every word, as a quoted prefix."""
        # Words hold letters and digits only, so quoting cannot be escaped from.
        return " ".join(f'"{word}"*' for word in self.words)

    def tsquery(self) -> str:
        """Return the tsquery text: every word as a quoted prefix, all required."""
        return " & ".join(f"'{word}':*" for word in self.words)


def is_sqlite_session(session: AsyncSession) -> bool:
    """Tell whether ``session`` talks to SQLite (FTS5) rather than PostgreSQL (GIN)."""
    return session.get_bind().dialect.name == "sqlite"


def sqlite_matches(query: TitleQuery) -> sa.Select[tuple[int]]:
    """Return the ids of the articles whose title matches, from the FTS5 index."""
    match = sa.text(f"{FTS_TABLE} MATCH :title_query").bindparams(title_query=query.fts5())
    return sa.select(_FTS.c.rowid).where(match)


def postgres_condition(query: TitleQuery) -> sa.ColumnElement[bool]:
    """Return the condition on ArticleSearch.words served by its GIN index."""
    # Imported here: PostgreSQL's dialect costs SQLite sites ~50 ms of every start-up.
    from sqlalchemy.dialects import postgresql

    return ArticleSearch.words.bool_op("@@")(sa.cast(query.tsquery(), postgresql.TSQUERY))


async def index_article(session: AsyncSession, article: Article, *, fresh: bool = False) -> None:
    """Write ``article``'s title words (and, on PostgreSQL, its sort keys) to the index."""
    words = title_words(article.title)
    if is_sqlite_session(session):
        if not fresh:
            await session.execute(sa.delete(_FTS).where(_FTS.c.rowid == article.id))
        await session.execute(sa.insert(_FTS).values(rowid=article.id, words=" ".join(words)))
        return
    if not fresh:
        await session.execute(
            sa.delete(ArticleSearch).where(ArticleSearch.article_id == article.id)
        )
    await session.execute(
        sa.insert(ArticleSearch).values(
            article_id=article.id,
            status=article.status,
            published_at=article.published_at,
            words=_tsvector(words),
        )
    )


def _tsvector(words: list[str]) -> sa.ColumnElement[object]:
    from sqlalchemy.dialects import postgresql

    # Built from the words as they are: no parser, no stemming, no stop words.
    unique = list(dict.fromkeys(words))
    return sa.func.array_to_tsvector(sa.cast(unique, postgresql.ARRAY(sa.Text)))


def rebuild(connection: sa.Connection, batch: int = 5000) -> int:
    """Index every article again, in batches; return how many (migration, bulk loads)."""
    sqlite = connection.dialect.name == "sqlite"
    connection.execute(sa.delete(_FTS) if sqlite else sa.delete(ArticleSearch))
    articles = sa.table(
        "articles",
        sa.column("id", sa.Integer),
        sa.column("title", sa.Text),
        sa.column("status", sa.String),
        sa.column("published_at", sa.DateTime),
    )
    done, last = 0, 0
    while True:
        rows = connection.execute(
            sa.select(articles.c.id, articles.c.title, articles.c.status, articles.c.published_at)
            .where(articles.c.id > last)
            .order_by(articles.c.id)
            .limit(batch)
        ).all()
        if not rows:
            return done
        if sqlite:
            connection.execute(
                sa.insert(_FTS),
                [{"rowid": r.id, "words": " ".join(title_words(r.title))} for r in rows],
            )
        else:
            connection.execute(
                sa.text(
                    "INSERT INTO article_search (article_id, status, published_at, words) "
                    "SELECT * FROM unnest(CAST(:ids AS integer[]), CAST(:statuses AS text[]), "
                    "CAST(:dates AS timestamp[]), CAST(:words AS tsvector[]))"
                ),
                {
                    "ids": [r.id for r in rows],
                    "statuses": [r.status for r in rows],
                    "dates": [r.published_at for r in rows],
                    "words": [_tsvector_text(title_words(r.title)) for r in rows],
                },
            )
        done += len(rows)
        last = rows[-1].id


def _tsvector_text(words: list[str]) -> str:
    # tsvector input syntax; words hold letters and digits only, so quoting is safe.
    return " ".join(f"'{word}'" for word in dict.fromkeys(words))
