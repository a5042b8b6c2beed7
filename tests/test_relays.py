"""Several relays ([[mail.relays]]): weights, failover, per-relay connections and rates."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import Envelope, Session

from publisher.config import MailSettings, RelaySettings, load_settings
from publisher.delivery.editions import enqueue, open_edition
from publisher.delivery.smtp import ServerUnavailable, SmtpPool
from publisher.delivery.worker import deliver
from publisher.errors import ConfigError
from publisher.site import Site
from tests.clirunner import ROOT
from tests.delivery_helpers import add_articles, add_subscribers, postgres_edition, start_worker
from tests.services import free_port
from tests.smtp_servers import RecordingHandler, smtp_server

MESSAGE = b"From: news@example.org\r\nTo: r@example.net\r\nSubject: s\r\n\r\nHalo.\r\n"


class PeerCounting(RecordingHandler):
    """Remember which client sockets sent mail, and how many at once at most."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.peers: set[Any] = set()
        self.active = 0
        self.most = 0

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        self.peers.add(session.peer)
        self.active += 1
        self.most = max(self.most, self.active)
        try:
            await asyncio.sleep(0.005)
            return await super().handle_DATA(server, session, envelope)
        finally:
            self.active -= 1


def mail_with(relays: Sequence[dict[str, Any]], **extra: Any) -> MailSettings:
    return MailSettings.from_mapping({"relays": list(relays), "timeout": "5s", **extra})


async def send_all(pool: SmtpPool, count: int) -> None:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(count):
        queue.put_nowait(n)

    async def loop(connection: Any) -> None:
        while not queue.empty():
            n = queue.get_nowait()
            replies = await connection.send("news@example.org", [f"r{n}@example.net"], MESSAGE)
            assert replies[f"r{n}@example.net"].accepted

    await asyncio.gather(*(loop(c) for c in pool.connections))


async def test_weights_share_the_mail_while_relays_have_idle_connections() -> None:
    heavy, light = RecordingHandler(), RecordingHandler()
    async with smtp_server(heavy) as heavy_port, smtp_server(light) as light_port:
        mail = mail_with(
            [
                {"url": f"smtp://127.0.0.1:{heavy_port}", "weight": 3},
                {"url": f"smtp://127.0.0.1:{light_port}", "weight": 1},
            ]
        )
        async with SmtpPool(mail, size=1) as pool:
            await send_all(pool, 400)
    assert heavy.total() + light.total() == 400
    # Binomial(400, 0.75): mean 300, standard deviation under 9; 60 is beyond 6 of them.
    assert 240 <= heavy.total() <= 360, (heavy.total(), light.total())


async def test_a_refusing_relay_is_skipped_and_its_mail_goes_to_the_others() -> None:
    working = RecordingHandler()
    async with smtp_server(working) as port:
        mail = mail_with(
            [
                {"url": f"smtp://127.0.0.1:{free_port()}", "weight": 100},  # nothing listens
                {"url": f"smtp://127.0.0.1:{port}", "weight": 1},
            ],
            relay_cooldown="60s",
        )
        async with SmtpPool(mail) as pool:
            started = time.perf_counter()
            await send_all(pool, 60)
            elapsed = time.perf_counter() - started
            relay = pool.connections[0].relays[0]  # type: ignore[attr-defined]
            assert relay.down_until > time.monotonic() + 50
            assert "cannot connect" in relay.last_error
    assert working.total() == 60
    assert elapsed < 10  # the dead relay was tried once per slot, not once per message


async def test_every_relay_down_raises_server_unavailable_naming_them() -> None:
    first, second = free_port(), free_port()
    mail = mail_with([{"url": f"smtp://127.0.0.1:{first}"}, {"url": f"smtp://127.0.0.1:{second}"}])
    async with SmtpPool(mail) as pool:
        with pytest.raises(ServerUnavailable, match="every relay is unavailable") as caught:
            await pool.connections[0].send("news@example.org", ["r@example.net"], MESSAGE)
    assert str(first) in str(caught.value)
    assert str(second) in str(caught.value)


async def test_per_relay_connections_and_rate() -> None:
    narrow, paced = PeerCounting(), PeerCounting()
    async with smtp_server(narrow) as narrow_port, smtp_server(paced) as paced_port:
        mail = mail_with(
            [
                {"url": f"smtp://127.0.0.1:{narrow_port}", "connections": 1, "weight": 1},
                {
                    "url": f"smtp://127.0.0.1:{paced_port}",
                    "connections": 2,
                    "weight": 1,
                    "rate_per_second": 40,
                },
            ]
        )
        async with SmtpPool(mail) as pool:
            assert len(pool.connections) == 3
            started = time.perf_counter()
            await send_all(pool, 120)
            elapsed = time.perf_counter() - started
    assert narrow.total() + paced.total() == 120
    assert len(narrow.peers) == 1
    assert narrow.most == 1
    assert len(paced.peers) <= 2
    # 40 per second on the paced relay: its share cannot have gone faster.
    assert elapsed >= (paced.total() - 1) / 40 * 0.95, (elapsed, paced.total())


async def test_worker_delivers_an_edition_over_two_relays(site: Site) -> None:
    first, second = RecordingHandler(), RecordingHandler()
    await add_articles(site, 2)
    await add_subscribers(site, 80)
    now = site.clock.now()
    edition = await open_edition(site, "daily", now.date(), now)
    assert (await enqueue(site, edition, now)).queued == 80
    async with smtp_server(first) as first_port, smtp_server(second) as second_port:
        site.settings.mail.relays = [
            RelaySettings(url=f"smtp://127.0.0.1:{first_port}", connections=2),
            RelaySettings(url=f"smtp://127.0.0.1:{second_port}", connections=2),
        ]
        report = await deliver(site)
    assert report.sent == 80
    assert first.total() + second.total() == 80
    assert first.total() > 0
    assert second.total() > 0


def test_relays_load_from_toml_and_bad_ones_name_the_key(tmp_path: Path) -> None:
    config = tmp_path / "publisher.toml"
    config.write_text(
        "[mail]\n"
        "[[mail.relays]]\n"
        'url = "smtp://relay-a.internal:25"\n'
        "weight = 3\n"
        "[[mail.relays]]\n"
        'url = "smtps://user:pw@relay-b.example:465"\n'
        "connections = 2\n"
        "rate_per_second = 10\n"
    )
    settings = load_settings(config)
    assert [r.weight for r in settings.mail.relays] == [3, 1]
    assert settings.mail.relays[1].connections == 2
    config.write_text('[mail]\n[[mail.relays]]\nurl = "http://relay"\n')
    with pytest.raises(ConfigError, match=r"mail\.relays\.url: must start with smtp://"):
        load_settings(config)
    config.write_text('[mail]\n[[mail.relays]]\nurl = "smtp://relay"\nweight = 0\n')
    with pytest.raises(ConfigError, match=r"mail\.relays\.weight"):
        load_settings(config)


class Timestamped(RecordingHandler):
    """Remember when each message arrived."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.arrivals: list[float] = []

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        answer = await super().handle_DATA(server, session, envelope)
        self.arrivals.append(time.time())
        return answer


RELAY_RATE = 20
PACED_READERS = 240


@pytest.mark.postgres
@pytest.mark.slow
async def test_a_relays_rate_holds_across_two_worker_processes(
    tmp_path: Path, postgres_server: str | None
) -> None:
    site_dir, url, site, _ = await postgres_edition(
        tmp_path, postgres_server, articles=2, readers=PACED_READERS
    )
    await site.aclose()
    handler = Timestamped()
    async with smtp_server(handler) as port:
        with (site_dir / "publisher.toml").open("a") as config:
            config.write(
                f'\n[[mail.relays]]\nurl = "smtp://127.0.0.1:{port}"\n'
                f"connections = 3\nrate_per_second = {RELAY_RATE}\n"
            )
        env = dict(os.environ, PYTHONPATH=str(ROOT), PUBLISHER_DATABASE__URL=url)
        workers = [await start_worker(site_dir, env) for _ in range(2)]
        deadline = time.monotonic() + 120
        while handler.total() < PACED_READERS:
            assert time.monotonic() < deadline, f"stuck at {handler.total()}"
            for worker in workers:
                if worker.returncode is not None:
                    _, err = await worker.communicate()
                    raise AssertionError(f"a worker died: {err.decode()[-3000:]}")
            await asyncio.sleep(0.2)
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        outputs = [await asyncio.wait_for(w.communicate(), timeout=30) for w in workers]
    for worker, (_, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err.decode()
    arrivals = sorted(handler.arrivals)
    assert len(arrivals) == PACED_READERS
    assert {handler.count(f"reader{n}@example.net") for n in range(PACED_READERS)} == {1}
    # Each worker alone may send RELAY_RATE a second; together they must not either.
    # Per wall-clock second (a message reserved at x.99 may arrive at the next second):
    per_second = Counter(int(at) for at in arrivals)
    assert max(per_second.values()) <= RELAY_RATE * 1.5, sorted(per_second.items())
    elapsed = arrivals[-1] - arrivals[0]
    assert elapsed >= (PACED_READERS / RELAY_RATE - 2), elapsed  # not 2x the rate
