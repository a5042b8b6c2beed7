"""The subscription pages over ASGI: double opt-in, one-click unsubscribe, CSRF, limits."""

from __future__ import annotations

import email
import email.policy
import re
import statistics
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from publisher.clock import FrozenClock
from publisher.db import transaction
from publisher.delivery.mailsink import MailSink
from publisher.ratelimits import Limit
from publisher.site import Site
from publisher.web.app import create_app
from publisher.web.subscription import SubscriptionState, drain
from subscribers import consent, repository, suppression
from subscribers.models import ACTIVE, PENDING, UNSUBSCRIBED
from subscribers.repository import Consent, Preferences
from subscribers.tokens import Tokens
from tests.smtp_servers import RecordingHandler, smtp_server

BASE = "https://news.example.org"


@dataclass
class Web:
    app: FastAPI
    client: httpx.AsyncClient
    sink: MailSink
    site: Site

    def tokens(self) -> Tokens:
        return Tokens(self.site.settings.web.secret_key, clock=self.site.clock)

    def mails(self) -> list[email.message.EmailMessage]:
        return [
            email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
            for p in self.sink.saved
        ]

    async def form(self, path: str, **headers: str) -> str:
        page = await self.client.get(path, headers=headers)
        assert page.status_code == 200, page.text
        found = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert found is not None
        return found[1]

    async def subscribe(self, address: str, **fields: str) -> httpx.Response:
        csrf = await self.form("/subscribe")
        data = {"csrf": csrf, "email": address, "frequency": "daily", **fields}
        response = await self.client.post("/subscribe", data=data)
        await drain(self.app)
        return response


def body_text(message: email.message.EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def link(message: email.message.EmailMessage, kind: str) -> str:
    found = re.search(rf"{re.escape(BASE)}/{kind}/[A-Za-z0-9._-]+", body_text(message))
    assert found is not None, body_text(message)
    return found[0].removeprefix(BASE)


@pytest.fixture
async def web(site: Site, tmp_path: Path) -> AsyncIterator[Web]:
    sink = MailSink(tmp_path / "mail", port=0)
    await sink.start()
    site.settings.mail.smtp_url = f"smtp://127.0.0.1:{sink.port}"
    app = create_app(site)
    transport = httpx.ASGITransport(app=app, client=("192.0.2.10", 40000))
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        yield Web(app, client, sink, site)
        await drain(app)
    await sink.stop()


async def status_of(site: Site, address: str) -> str | None:
    async with transaction(site.engine) as session:
        found = await repository.get_by_email(session, address)
        return None if found is None else found.status


async def test_double_opt_in_preferences_and_one_click_unsubscribe(web: Web) -> None:
    page = await web.client.get("/subscribe", headers={"Accept-Language": "id-ID,id;q=0.9"})
    assert '<html lang="id">' in page.text
    assert "Berlangganan" in page.text
    assert "publisher_csrf" in page.headers["set-cookie"]
    done = await web.subscribe("Pembaca@Example.org", name="Pembaca", timezone="Asia/Jayapura")
    assert done.status_code == 200
    assert await status_of(web.site, "pembaca@example.org") == PENDING
    [confirmation] = web.mails()
    assert confirmation["To"].addresses[0].addr_spec == "Pembaca@example.org"
    confirm_path = link(confirmation, "confirm")
    # Opening the link (or a scanner prefetching it) only shows a button.
    assert (await web.client.get(confirm_path)).status_code == 200
    assert await status_of(web.site, "pembaca@example.org") == PENDING
    csrf = await web.form(confirm_path)
    confirmed = await web.client.post(confirm_path, data={"csrf": csrf})
    assert confirmed.status_code == 200
    assert await status_of(web.site, "pembaca@example.org") == ACTIVE
    preferences_path = re.search(r'href="(/preferences/[^"]+)"', confirmed.text)
    unsubscribe_path = re.search(r'href="(/unsubscribe/[^"]+)"', confirmed.text)
    assert preferences_path is not None
    assert unsubscribe_path is not None
    csrf = await web.form(preferences_path[1])
    saved = await web.client.post(
        preferences_path[1],
        data={"csrf": csrf, "language": "en", "timezone": "Asia/Makassar", "frequency": "weekly"},
    )
    assert saved.status_code == 200
    assert "Your preferences are saved." in saved.text  # now in English
    async with transaction(web.site.engine) as session:
        found = await repository.get_by_email(session, "pembaca@example.org")
        assert found is not None
        assert (found.language, found.timezone, found.frequency) == (
            "en",
            "Asia/Makassar",
            "weekly",
        )
    # GET never unsubscribes; the RFC 8058 POST does, without cookies, 200, idempotent.
    assert (await web.client.get(unsubscribe_path[1])).status_code == 200
    assert await status_of(web.site, "pembaca@example.org") == ACTIVE
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=web.app), base_url=BASE
    ) as cookieless:
        for _ in range(2):
            response = await cookieless.post(
                unsubscribe_path[1],
                content=b"List-Unsubscribe=One-Click",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            assert response.status_code == 200
            assert "location" not in response.headers
    await drain(web.app)
    assert await status_of(web.site, "pembaca@example.org") == UNSUBSCRIBED
    async with transaction(web.site.engine) as session:
        assert await suppression.is_suppressed(session, "PEMBACA@example.org")
    assert len(web.mails()) == 1  # the confirmation only: no mail after unsubscribing


async def prepare_states(site: Site) -> dict[str, str]:
    now = site.clock.now()
    record = Consent("test", now)
    async with transaction(site.engine) as session:
        await repository.add(session, "pending@example.org", Preferences(), record, now)
        await repository.add(
            session, "active@example.org", Preferences(), record, now, status=ACTIVE
        )
        gone = await repository.add(
            session, "gone@example.org", Preferences(), record, now, status=ACTIVE
        )
        await consent.unsubscribe(session, gone, now)
    return {
        "new": "new@example.org",
        "pending": "pending@example.org",
        "active": "active@example.org",
        "suppressed": "gone@example.org",
    }


def comparable(response: httpx.Response) -> tuple[int, str, tuple[tuple[str, str], ...]]:
    headers = tuple(sorted((k, v) for k, v in response.headers.items() if k not in ("date",)))
    return response.status_code, response.text, headers


async def test_responses_are_identical_whatever_the_address_state(web: Web) -> None:
    addresses = await prepare_states(web.site)
    csrf = await web.form("/subscribe")
    state: SubscriptionState = web.app.state.subscription
    state.ip_limit = Limit("subscribe-ip", 1000, 600)
    state.address_limit = Limit("subscribe-address", 1000, 3600)
    seen: dict[str, tuple[int, str, tuple[tuple[str, str], ...]]] = {}
    timings: dict[str, list[float]] = {name: [] for name in addresses}
    api_seen: set[tuple[int, str]] = set()
    for _round in range(5):
        for name, address in addresses.items():
            start = time.perf_counter()
            response = await web.client.post("/subscribe", data={"csrf": csrf, "email": address})
            timings[name].append(time.perf_counter() - start)
            seen.setdefault(name, comparable(response))
            assert comparable(response) == seen[name]
            await drain(web.app)
            api = await web.client.post("/api/subscribe", json={"email": address})
            api_seen.add((api.status_code, api.text))
            await drain(web.app)
            web.site.clock.advance(timedelta(minutes=11))  # type: ignore[attr-defined]
    assert len({value for value in seen.values()}) == 1, "responses differ between states"
    assert len(api_seen) == 1
    assert next(iter(api_seen))[0] == 202
    medians = {name: statistics.median(values) for name, values in timings.items()}
    fastest, slowest = min(medians.values()), max(medians.values())
    assert slowest - fastest < max(0.05, fastest), medians
    # The work did happen behind the constant answer.
    kinds = {(m["To"].addresses[0].addr_spec, "/confirm/" in body_text(m)) for m in web.mails()}
    assert kinds == {
        ("new@example.org", True),
        ("pending@example.org", True),
        ("gone@example.org", True),
        ("active@example.org", False),  # "you are already subscribed"
    }
    assert await status_of(web.site, "gone@example.org") == PENDING  # waiting to confirm
    async with transaction(web.site.engine) as session:
        assert await suppression.is_suppressed(session, "gone@example.org")


async def test_the_answer_never_waits_for_the_database_or_the_mail(web: Web) -> None:
    addresses = await prepare_states(web.site)
    csrf = await web.form("/subscribe")
    handler = RecordingHandler(data_delay=3.0)  # a slow mail server
    async with smtp_server(handler) as port:
        web.site.settings.mail.smtp_url = f"smtp://127.0.0.1:{port}"
        for address in addresses.values():
            start = time.perf_counter()
            response = await web.client.post("/subscribe", data={"csrf": csrf, "email": address})
            elapsed = time.perf_counter() - start
            assert response.status_code == 200
            assert elapsed < 1.5, f"{address}: answered after {elapsed:.2f} s"
        await drain(web.app)
    assert sorted(handler.delivered) == sorted(addresses.values())


async def test_bad_tokens_get_one_plain_400(web: Web, clock: FrozenClock) -> None:
    await prepare_states(web.site)
    async with transaction(web.site.engine) as session:
        pending = await repository.get_by_email(session, "pending@example.org")
        assert pending is not None
    tokens = web.tokens()
    expired = tokens.confirm(pending.id)
    valid_unsubscribe = tokens.unsubscribe(pending.id)
    clock.advance(timedelta(days=7, seconds=1))
    bodies = set()
    for path in (
        f"/confirm/{expired}",
        f"/unsubscribe/{valid_unsubscribe[:-2]}xx",
        f"/unsubscribe/{tokens.unsubscribe(999999)}",
        f"/preferences/{valid_unsubscribe}",  # right signer, wrong purpose
        "/preferences/%3Cscript%3E",
        f"/confirm/{tokens.confirm(999999)}",
    ):
        response = await web.client.get(path)
        assert response.status_code == 400, path
        assert "pending@example.org" not in response.text
        bodies.add(response.text)
        post = await web.client.post(path, data={"csrf": "x"})
        assert post.status_code == 400
    assert len(bodies) == 1
    assert await status_of(web.site, "pending@example.org") == PENDING


async def test_forms_need_a_csrf_token_bound_to_the_cookie(web: Web) -> None:
    missing = await web.client.post("/subscribe", data={"email": "x@example.org"})
    assert missing.status_code == 400
    csrf = await web.form("/subscribe")
    web.client.cookies.set("publisher_csrf", "someone-elses-nonce", domain="news.example.org")
    wrong = await web.client.post("/subscribe", data={"csrf": csrf, "email": "x@example.org"})
    assert wrong.status_code == 400
    await drain(web.app)
    assert await status_of(web.site, "x@example.org") is None
    assert web.mails() == []
    # Preferences: no token, no change.
    await prepare_states(web.site)
    async with transaction(web.site.engine) as session:
        active = await repository.get_by_email(session, "active@example.org")
        assert active is not None
    path = f"/preferences/{web.tokens().preferences(active.id)}"
    refused = await web.client.post(path, data={"frequency": "weekly"})
    assert refused.status_code == 400
    async with transaction(web.site.engine) as session:
        again = await repository.get_by_email(session, "active@example.org")
        assert again is not None
        assert again.frequency == "daily"
    # The JSON API refuses form posts (a cross-site form cannot send application/json).
    form_post = await web.client.post("/api/subscribe", data={"email": "x@example.org"})
    assert form_post.status_code == 415


async def test_rate_limits_per_address_and_per_ip(web: Web) -> None:
    csrf = await web.form("/subscribe")
    for _ in range(3):
        ok = await web.client.post("/subscribe", data={"csrf": csrf, "email": "a@example.org"})
        assert ok.status_code == 200
    limited = await web.client.post("/subscribe", data={"csrf": csrf, "email": "A@Example.org"})
    assert limited.status_code == 429
    assert 3000 < int(limited.headers["retry-after"]) <= 3600
    for n in range(6):
        response = await web.client.post(
            "/subscribe", data={"csrf": csrf, "email": f"b{n}@example.org"}
        )
        assert response.status_code == 200
    per_ip = await web.client.post("/api/subscribe", json={"email": "c@example.org"})
    assert per_ip.status_code == 429
    assert int(per_ip.headers["retry-after"]) > 0
    other_ip = httpx.ASGITransport(app=web.app, client=("198.51.100.1", 1))
    async with httpx.AsyncClient(transport=other_ip, base_url=BASE) as client:
        response = await client.post("/api/subscribe", json={"email": "c@example.org"})
        assert response.status_code == 202
    web.site.clock.advance(timedelta(minutes=61))  # type: ignore[attr-defined]
    again = await web.client.post("/subscribe", data={"csrf": csrf, "email": "a@example.org"})
    assert again.status_code == 200
    await drain(web.app)


async def test_honeypot_and_invalid_input(web: Web) -> None:
    csrf = await web.form("/subscribe")
    trap = await web.client.post(
        "/subscribe", data={"csrf": csrf, "email": "bot@example.org", "website": "http://spam"}
    )
    human = await web.client.post("/subscribe", data={"csrf": csrf, "email": "human@example.org"})
    assert (trap.status_code, trap.text) == (human.status_code, human.text)
    await drain(web.app)
    assert await status_of(web.site, "bot@example.org") is None
    assert await status_of(web.site, "human@example.org") == PENDING
    bad = await web.client.post(
        "/subscribe",
        data={"csrf": csrf, "email": "x@example.org\r\nBcc: victim@example.org"},
        headers={"Accept-Language": "en"},
    )
    assert bad.status_code == 400
    assert "Enter a valid email address." in bad.text
    bad_zone = await web.client.post(
        "/api/subscribe", json={"email": "y@example.org", "timezone": "Mars/Base"}
    )
    assert bad_zone.status_code == 422
    huge = await web.client.post("/subscribe", content=b"x" * 100_000)
    assert huge.status_code == 413


async def test_concurrent_confirm_clicks_queue_exactly_one_welcome(web: Web) -> None:
    import asyncio

    import sqlalchemy as sa

    from publisher.delivery.models import MailKind, OutboxRow

    await web.subscribe("berdua@example.org")
    [confirmation] = web.mails()
    confirm_path = link(confirmation, "confirm")
    csrf = await web.form(confirm_path)
    # Many clicks at once (a double click, a mail scanner, a second tab): each its own
    # request and transaction, racing on one pending reader.
    for _ in range(5):
        answers = await asyncio.gather(
            *(web.client.post(confirm_path, data={"csrf": csrf}) for _ in range(8))
        )
        assert [a.status_code for a in answers] == [200] * 8
    async with transaction(web.site.engine) as session:
        welcomes = await session.scalar(
            sa.select(sa.func.count())
            .select_from(OutboxRow)
            .where(OutboxRow.kind == MailKind.WELCOME)
        )
    assert welcomes == 1
    assert await status_of(web.site, "berdua@example.org") == ACTIVE
