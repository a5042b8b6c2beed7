"""Bounces and complaints: DSN/ARF parsing, mailbox readers and the suppression rules."""

from __future__ import annotations

import email
import mailbox
from datetime import timedelta
from pathlib import Path

import pytest

from publisher.clock import FrozenClock
from publisher.db import transaction
from publisher.site import Site
from subscribers import bounces, repository, suppression
from subscribers.errors import MailboxError
from subscribers.models import ACTIVE, BOUNCED, COMPLAINED
from subscribers.repository import Consent, Preferences

DATA = Path(__file__).parent / "data" / "bounces"


def load(name: str) -> email.message.Message:
    return email.message_from_bytes((DATA / name).read_bytes())


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("dsn-hard.eml", [("Hilang@example.net", "hard")]),  # validated and normalized
        ("dsn-soft.eml", [("penuh@example.net", "soft")]),
        ("dsn-mailbox-full.eml", [("kotak@example.net", "soft")]),
        ("arf-complaint.eml", [("pengadu@example.com", "complaint")]),
        ("exim-hard.eml", [("tiada@example.co.id", "hard")]),
        ("not-a-bounce.eml", []),
    ],
)
def test_classify(name: str, expected: list[tuple[str, str]]) -> None:
    found = bounces.classify(load(name))
    assert [(f.email, f.kind) for f in found] == expected
    for failure in found:
        assert failure.report_id


@pytest.mark.parametrize(
    ("action", "status", "kind"),
    [
        ("failed", "5.1.1", "hard"),
        ("failed", "5.1.10", "hard"),
        ("failed", "5.2.1", "hard"),
        ("failed", "5.2.2", "soft"),
        ("failed", "5.7.1", "soft"),
        ("failed", "4.4.7", "soft"),
        ("delayed", "4.4.1", "soft"),
        ("delivered", "2.0.0", None),
        ("relayed", "", None),
        ("failed", "", "hard"),
    ],
)
def test_classify_status(action: str, status: str, kind: str | None) -> None:
    assert bounces.classify_status(action, status) == kind


def test_read_eml_mbox_and_maildir(tmp_path: Path) -> None:
    names = sorted(p.name for p in DATA.glob("*.eml"))
    assert [raw.label for raw in bounces.read_mailbox(DATA / "dsn-hard.eml")] == [
        str(DATA / "dsn-hard.eml")
    ]
    box = mailbox.mbox(tmp_path / "bounces.mbox")
    for name in names:
        box.add((DATA / name).read_bytes())
    box.close()
    from_mbox = [
        bounces.parse_message(raw.data)["Subject"]
        for raw in bounces.read_mailbox(tmp_path / "bounces.mbox")
    ]
    assert len(from_mbox) == len(names)
    maildir = mailbox.Maildir(tmp_path / "Maildir")
    for name in names:
        maildir.add((DATA / name).read_bytes())
    found = list(bounces.read_mailbox(tmp_path / "Maildir"))
    assert len(found) == len(names)
    assert all(raw.error is None for raw in found)
    with pytest.raises(MailboxError):
        list(bounces.read_mailbox(tmp_path))  # a folder that is no maildir
    with pytest.raises(MailboxError):
        list(bounces.read_mailbox(tmp_path / "missing.eml"))


async def add_active(site: Site, address: str) -> None:
    async with transaction(site.engine) as session:
        await repository.add(
            session,
            address,
            Preferences(),
            Consent("test", site.clock.now()),
            site.clock.now(),
            status=ACTIVE,
        )


async def test_hard_bounce_and_complaint_suppress_at_once(site: Site) -> None:
    await add_active(site, "hilang@example.net")
    await add_active(site, "pengadu@example.com")
    now = site.clock.now()
    async with transaction(site.engine) as session:
        for name in ("dsn-hard.eml", "arf-complaint.eml"):
            for f in bounces.classify(load(name)):
                outcome = await bounces.record_bounce(
                    session,
                    f.email,
                    f.kind,
                    f.detail,
                    now,
                    3,
                    timedelta(days=30),
                    report_id=f.report_id,
                )
                assert outcome.suppressed
        # The same report processed twice counts once.
        again = bounces.classify(load("dsn-hard.eml"))[0]
        outcome = await bounces.record_bounce(
            session,
            again.email,
            again.kind,
            again.detail,
            now,
            3,
            timedelta(days=30),
            report_id=again.report_id,
        )
        assert outcome.duplicate
    async with transaction(site.engine) as session:
        hard = await repository.get_by_email(session, "hilang@example.net")
        complained = await repository.get_by_email(session, "pengadu@example.com")
        assert hard is not None
        assert complained is not None
        assert (hard.status, hard.hard_bounces) == (BOUNCED, 1)
        assert complained.status == COMPLAINED
        assert await suppression.reason(session, "HILANG@example.net") == "hard-bounce"
        assert await suppression.reason(session, "pengadu@example.com") == "complaint"


async def test_soft_bounces_suppress_only_past_the_limit_within_the_window(
    site: Site, clock: FrozenClock
) -> None:
    await add_active(site, "penuh@example.net")
    window = timedelta(days=7)

    async def soft() -> bool:
        async with transaction(site.engine) as session:
            outcome = await bounces.record_bounce(
                session, "penuh@example.net", "soft", "4.2.2", clock.now(), 3, window
            )
            return outcome.suppressed

    assert not await soft()
    clock.advance(timedelta(days=8))  # the first one falls out of the window
    assert not await soft()
    clock.advance(timedelta(days=1))
    assert not await soft()
    clock.advance(timedelta(days=1))
    assert await soft()
    async with transaction(site.engine) as session:
        found = await repository.get_by_email(session, "penuh@example.net")
        assert found is not None
        assert (found.status, found.soft_bounces) == (BOUNCED, 4)
        assert await suppression.reason(session, "penuh@example.net") == "soft-bounce"


async def test_send_time_failure_for_unknown_address_still_suppresses(site: Site) -> None:
    async with transaction(site.engine) as session:
        outcome = await bounces.record_bounce(
            session,
            "stranger@example.org",
            "hard",
            "550 5.1.1 no such user",
            site.clock.now(),
            3,
            timedelta(days=30),
        )
        assert outcome.suppressed
        assert await suppression.is_suppressed(session, "Stranger@Example.org")
