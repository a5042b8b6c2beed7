"""`digest preview` after today's send time shows the NEXT digest (tomorrow's), dated so."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from publisher.cli.digest import write_preview
from publisher.clock import FrozenClock
from publisher.site import Site
from tests.delivery_helpers import add_articles

# Asia/Jakarta is UTC+7; digests go out at 07:00 WIB (00:00 UTC).
YESTERDAY_EVENING = datetime(2026, 11, 24, 14, 0, tzinfo=UTC)  # 21:00 WIB on the 24th
THIS_EVENING = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)  # 19:00 WIB on the 25th


async def _articles(site: Site) -> None:
    await add_articles(site, 1, published=YESTERDAY_EVENING, prefix="kemarin")
    await add_articles(site, 1, published=THIS_EVENING, prefix="malam")


async def test_preview_after_send_time_is_tomorrows_digest(
    site: Site, clock: FrozenClock, tmp_path: Path
) -> None:
    clock.set(datetime(2026, 11, 24, 12, 0, tzinfo=UTC))
    await _articles(site)
    clock.set(datetime(2026, 11, 25, 13, 0, tzinfo=UTC))  # 20:00 WIB: today's went out at 07:00
    preview = await write_preview(site, tmp_path, language=None, subscriber=None)
    text = (tmp_path / "digest.txt").read_text()
    assert not preview.sample
    assert "MALAM 0" in text  # published this evening: in tomorrow's digest
    assert "KEMARIN 0" not in text  # was in this morning's digest already
    assert "26 November 2026" in text


async def test_preview_before_send_time_is_todays_digest(
    site: Site, clock: FrozenClock, tmp_path: Path
) -> None:
    clock.set(datetime(2026, 11, 24, 12, 0, tzinfo=UTC))
    await _articles(site)
    clock.set(datetime(2026, 11, 24, 23, 0, tzinfo=UTC))  # 06:00 WIB on the 25th
    await write_preview(site, tmp_path, language=None, subscriber=None)
    text = (tmp_path / "digest.txt").read_text()
    assert "KEMARIN 0" in text
    assert "MALAM 0" not in text  # not published yet
    assert "25 November 2026" in text
