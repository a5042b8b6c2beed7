"""Subscribers: addresses, tokens, double opt-in, suppression and the repository."""

from __future__ import annotations

import string
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from publisher.clock import FrozenClock
from publisher.db import transaction
from publisher.site import Site
from subscribers import consent, repository, suppression
from subscribers.addresses import Address, normalize, validated
from subscribers.errors import InvalidAddress, InvalidInput, SubscriberExists, TokenError
from subscribers.models import ACTIVE, PENDING, UNSUBSCRIBED, Base, Subscriber, Suppression
from subscribers.repository import Consent, Preferences
from subscribers.tokens import Tokens

SECRET = "s3cret-key-for-tests-0123456789"

local_chars = string.ascii_letters + string.digits + "!#$%&'*+-/=?^_`{|}~"
locals_ = st.text(local_chars, min_size=1, max_size=20).filter(
    lambda s: not s.startswith(".") and not s.endswith(".")
)
labels = st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=12)
domains = st.builds(lambda a, b: f"{a}.{b}", labels, st.sampled_from(["org", "id", "com", "net"]))


def flip_case(text: str, mask: list[bool]) -> str:
    return "".join(
        c.upper() if m else c.lower() for c, m in zip(text, mask * len(text), strict=False)
    )


@given(local=locals_, domain=domains, mask=st.lists(st.booleans(), min_size=1, max_size=8))
@settings(max_examples=200, deadline=None)
def test_normalization_is_idempotent_and_case_insensitive(
    local: str, domain: str, mask: list[bool]
) -> None:
    address = normalize(f"{local}@{domain}")
    assert normalize(address.email) == address
    assert normalize(f"  {address.email}\t") == address
    shouted = normalize(flip_case(f"{local}@{domain}", mask))
    assert shouted.key == address.key
    assert address.email.split("@")[1] == domain.lower()


@given(label=st.text("abcdefghijklmnopqrstuvwxyzäöüéñ", min_size=1, max_size=10))
@settings(max_examples=100, deadline=None)
def test_idn_domains_share_a_key_in_unicode_and_punycode(label: str) -> None:
    try:
        unicode_form = normalize(f"pembaca@{label}.id")
    except InvalidAddress:
        return  # some generated labels are not valid IDNA; nothing to compare
    assert unicode_form.ascii_email is not None
    ascii_form = normalize(unicode_form.ascii_email)
    assert ascii_form.key == unicode_form.key
    assert ascii_form.email == unicode_form.email


@given(st.text(max_size=40))
@settings(max_examples=300, deadline=None)
def test_normalize_never_passes_line_breaks(text: str) -> None:
    try:
        address = normalize(f"a{text}@example.org")
    except InvalidAddress:
        return
    assert not any(ch in address.email for ch in "\r\n\x00 <>,;")
    assert address.key == address.email.lower()


def test_internationalized_addresses_are_accepted() -> None:
    address = normalize("Pengguna@Bücher.DE")
    assert address.email == "Pengguna@bücher.de"
    assert address.key == "pengguna@bücher.de"
    assert address.ascii_email == "Pengguna@xn--bcher-kva.de"
    unicode_local = normalize("用户@例子.广告")
    assert unicode_local.ascii_email is None


@pytest.mark.parametrize(
    "bad",
    ["", "no-at-sign", "a@b", "two@@example.org", "a@example.org\r\nBcc: x@example.org", "x" * 400],
)
def test_invalid_addresses_are_rejected(bad: str) -> None:
    with pytest.raises(InvalidAddress):
        normalize(bad)


def test_preferences_validate_time_zone_language_and_frequency() -> None:
    parsed = Preferences.parse(
        name=" Siti\r\nBcc: x ",
        language="EN",
        timezone="Asia/Makassar",
        frequency="Weekly",
        topics=["Ekonomi", "ekonomi", "Olah Raga"],
    )
    assert parsed == Preferences(
        "Siti Bcc: x", "en", "Asia/Makassar", "weekly", ("ekonomi", "olah-raga")
    )
    for kwargs in (
        {"timezone": "Mars/Olympus"},
        {"timezone": "../etc/passwd"},
        {"language": "xx"},
        {"frequency": "hourly"},
    ):
        with pytest.raises(InvalidInput):
            Preferences.parse(**kwargs)


def test_tokens_round_trip_and_reject_tampering() -> None:
    tokens = Tokens(SECRET)
    for sign, load in (
        (tokens.unsubscribe, tokens.load_unsubscribe),
        (tokens.preferences, tokens.load_preferences),
        (tokens.confirm, tokens.load_confirm),
    ):
        token = sign(42)
        assert load(token) == 42
        payload, _, signature = token.rpartition(".")
        # Change the signature's first character: every bit of it is signature data,
        # whereas the last base64 character also carries padding bits a decoder ignores.
        flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
        for forged in (
            f"{payload}.{flipped}",
            "43" + token[2:],
            f"{payload}x.{signature}",
            "",
            "42",
            token + "é",
            "x" * 500,
        ):
            with pytest.raises(TokenError):
                load(forged)
    # A salt per purpose: an unsubscribe token is no preferences or confirm token.
    with pytest.raises(TokenError):
        tokens.load_preferences(tokens.unsubscribe(7))
    with pytest.raises(TokenError):
        tokens.load_confirm(tokens.unsubscribe(7))
    with pytest.raises(TokenError):
        Tokens("another-secret-key-0123456789").load_unsubscribe(tokens.unsubscribe(7))


def test_confirm_tokens_expire_after_seven_days(clock: FrozenClock) -> None:
    tokens = Tokens(SECRET, clock=clock)
    token = tokens.confirm(5)
    unsubscribe = tokens.unsubscribe(5)
    clock.advance(timedelta(days=6, hours=23))
    assert tokens.load_confirm(token) == 5
    clock.advance(timedelta(hours=2))
    with pytest.raises(TokenError):
        tokens.load_confirm(token)
    clock.advance(timedelta(days=3650))
    assert tokens.load_unsubscribe(unsubscribe) == 5


def test_signing_is_cheap() -> None:
    tokens = Tokens(SECRET)
    start = time.perf_counter()
    for n in range(20000):
        tokens.unsubscribe(n)
    per_token = (time.perf_counter() - start) / 20000
    assert per_token < 50e-6, f"{per_token * 1e6:.1f} µs per token"


def test_csrf_tokens_bind_the_cookie_nonce(clock: FrozenClock) -> None:
    tokens = Tokens(SECRET, clock=clock)
    signed = tokens.csrf("nonce-1")
    tokens.check_csrf(signed, "nonce-1")
    with pytest.raises(TokenError):
        tokens.check_csrf(signed, "nonce-2")
    with pytest.raises(TokenError):
        tokens.check_csrf(signed, "")
    clock.advance(timedelta(hours=13))
    with pytest.raises(TokenError):
        tokens.check_csrf(signed, "nonce-1")


def test_orm_matches_the_migration(site: Site) -> None:
    from publisher.db import create_sync_engine

    engine = create_sync_engine(site.settings.database.url)
    try:
        inspector = sa.inspect(engine)
        for table in Base.metadata.sorted_tables:
            migrated = {c["name"] for c in inspector.get_columns(table.name)}
            assert migrated == {c.name for c in table.columns}, table.name
    finally:
        engine.dispose()


def web_consent(site: Site) -> Consent:
    return Consent("web", site.clock.now(), "192.0.2.7", "Firefox", "Saya mau kabar pagi.")


async def test_double_opt_in_flow(site: Site, clock: FrozenClock) -> None:
    address = normalize("Siti@Example.org")
    async with transaction(site.engine) as session:
        outcome = await consent.subscribe(
            session, address, Preferences(), web_consent(site), clock.now()
        )
        assert outcome.action == "confirm"
        assert outcome.subscriber.status == PENDING
        subscriber_id = outcome.subscriber.id
    async with transaction(site.engine) as session:
        again = await consent.subscribe(
            session, normalize("siti@example.ORG"), Preferences(), web_consent(site), clock.now()
        )
        assert again.action == "none"  # rate limited: an email just went out
    clock.advance(timedelta(minutes=11))
    async with transaction(site.engine) as session:
        again = await consent.subscribe(
            session, address, Preferences(), web_consent(site), clock.now()
        )
        assert (again.action, again.subscriber.id) == ("confirm", subscriber_id)
        confirmed = await consent.confirm(session, subscriber_id, clock.now())
        assert confirmed is not None
        assert confirmed.activated
        assert confirmed.subscriber.status == ACTIVE
        assert confirmed.subscriber.consent_ip == "192.0.2.7"
        assert confirmed.subscriber.consent_text == "Saya mau kabar pagi."
    clock.advance(timedelta(minutes=11))
    async with transaction(site.engine) as session:
        again = await consent.subscribe(
            session, address, Preferences(), web_consent(site), clock.now()
        )
        assert again.action == "already"
        assert again.subscriber.status == ACTIVE
        subscriber = await repository.get(session, subscriber_id)
        assert subscriber is not None
        assert await consent.unsubscribe(session, subscriber, clock.now())
        assert not await consent.unsubscribe(session, subscriber, clock.now())
        assert subscriber.status == UNSUBSCRIBED
        assert await suppression.is_suppressed(session, "SITI@example.org")
        # An old confirmation link cannot undo the unsubscribe.
        assert await consent.confirm(session, subscriber_id, clock.now()) is None


async def test_suppression_survives_delete_and_only_double_opt_in_lifts_it(
    site: Site, clock: FrozenClock
) -> None:
    now = clock.now()
    async with transaction(site.engine) as session:
        subscriber = await repository.add(
            session, "pergi@example.org", Preferences(), web_consent(site), now, status=ACTIVE
        )
        await consent.unsubscribe(session, subscriber, now)
        await repository.remove(session, "PERGI@example.org")
        assert await repository.get_by_email(session, "pergi@example.org") is None
        rows = await session.scalars(sa.select(Suppression.email_hash))
        assert list(rows) == [suppression.email_hash("pergi@example.org")]
        assert "pergi" not in suppression.email_hash("pergi@example.org")
    async with transaction(site.engine) as session:
        outcome = await consent.subscribe(
            session, normalize("pergi@example.org"), Preferences(), web_consent(site), now
        )
        assert outcome.action == "confirm"
        assert await suppression.is_suppressed(session, "pergi@example.org")
        await consent.confirm(session, outcome.subscriber.id, now)
        assert not await suppression.is_suppressed(session, "pergi@example.org")


async def test_repository_add_get_stream_remove(site: Site) -> None:
    now = site.clock.now()
    async with transaction(site.engine) as session:
        for n in range(25):
            await repository.add(
                session,
                f"r{n}@example.org",
                Preferences(frequency="weekly" if n % 5 == 0 else "daily"),
                web_consent(site),
                now,
                status=ACTIVE if n % 2 else PENDING,
            )
        with pytest.raises(SubscriberExists):
            await repository.add(session, "R3@Example.org", Preferences(), web_consent(site), now)
    async with transaction(site.engine) as session:
        streamed = [s.email async for s in repository.stream(session, status=ACTIVE, batch_size=4)]
        assert streamed == [f"r{n}@example.org" for n in range(25) if n % 2]
        weekly = [
            s.email async for s in repository.stream(session, frequency="weekly", batch_size=2)
        ]
        assert weekly == [f"r{n}@example.org" for n in range(0, 25, 5)]
        assert (await repository.count_by_status(session)) == {ACTIVE: 12, PENDING: 13}
        found = await repository.get_by_email(session, "R7@EXAMPLE.ORG")
        assert found is not None
        assert await repository.get(session, found.id) is found


async def test_deleted_ids_are_never_reused(site: Site) -> None:
    now = site.clock.now()
    async with transaction(site.engine) as session:
        first = await repository.add(
            session, "a@example.org", Preferences(), web_consent(site), now
        )
        old_id = first.id
        await repository.remove(session, "a@example.org")
    async with transaction(site.engine) as session:
        second = await repository.add(
            session, "b@example.org", Preferences(), web_consent(site), now
        )
        assert second.id != old_id
        count = await session.scalar(sa.select(sa.func.count()).select_from(Subscriber))
        assert count == 1


atext = string.ascii_letters + string.digits + "!#$%&'*+-/=?^_`{|}~."
any_domain = st.one_of(
    domains,
    st.sampled_from(["Bücher.DE", "xn--bcher-kva.de", "localhost", "b", "例子.广告", "a..b.org"]),
    st.text(string.ascii_letters + string.digits + ".-", min_size=1, max_size=20),
)


@given(local=st.text(atext + 'é"', min_size=0, max_size=70), domain=any_domain)
@settings(max_examples=500, deadline=None)
def test_fast_path_equals_email_validator(local: str, domain: str) -> None:
    text = f"{local}@{domain}"
    try:
        expected: Address | str = validated(text)
    except InvalidAddress:
        expected = "invalid"
    try:
        got: Address | str = normalize(text)
    except InvalidAddress:
        got = "invalid"
    assert got == expected
