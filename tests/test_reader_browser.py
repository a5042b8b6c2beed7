"""Public pages in Chromium: no horizontal overflow from 320 px, the subscribe form fits."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Coroutine, Iterator
from typing import Any

import httpx
import pytest

from publisher.cli.init import init_site
from publisher.config import load_settings
from publisher.site import Site
from publisher.web.server import running
from tests.feeds_helpers import add_hostile, load_samples
from tests.services import free_port

pytestmark = pytest.mark.browser
WIDTHS = (320, 375)


def run_elsewhere(job: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine on its own loop in a thread (sync Playwright holds this thread's loop)."""
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(asyncio.run(job)))
    thread.start()
    thread.join()
    return result[0] if result else None


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("reader")
    directory = root / "site"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    init_site(directory, title="Kabar Uji dengan Judul yang Cukup Panjang", base_url=base)
    path = directory / "publisher.toml"
    text = path.read_text()
    path.write_text(text.replace("sqlite:///publisher.db", f"sqlite:///{root / 'p.db'}"))

    async def prepare() -> None:
        site = Site.from_settings(load_settings(path))
        try:
            await load_samples(site)
            await add_hostile(site)
        finally:
            await site.aclose()

    run_elsewhere(prepare())
    site = Site.from_settings(load_settings(path))
    with running(site, port=port) as served:
        yield served


def _paths(base: str) -> list[str]:
    home = httpx.get(base + "/", timeout=10).text
    article = re.search(r'href="[^"]*(/articles/[a-z0-9-]+)"', home)
    assert article is not None
    page = httpx.get(base + article[1], timeout=10).text
    tag = re.search(r'href="[^"]*(/tags/[a-z0-9-]+)"', page)
    author = re.search(r'href="[^"]*(/authors/[a-z0-9-]+)"', page)
    assert tag
    assert author
    return ["/", article[1], tag[1], author[1], "/archive", "/subscribe", "/articles/hostile"]


def test_no_horizontal_overflow_at_320_and_375(browser: Any, served: str) -> None:
    for width in WIDTHS:
        context = browser.new_context(viewport={"width": width, "height": 800}, base_url=served)
        page = context.new_page()
        try:
            for path in _paths(served):
                page.goto(served + path)
                sizes = page.evaluate(
                    "() => ({scroll: document.documentElement.scrollWidth,"
                    " client: document.documentElement.clientWidth})"
                )
                assert sizes["scroll"] <= sizes["client"], (width, path, sizes)
                if path != "/subscribe":
                    assert page.locator("aside.subscribe-cta form input[type=email]").count() == 1
        finally:
            context.close()


def test_the_short_form_leads_to_the_full_form_in_chromium(browser: Any, served: str) -> None:
    context = browser.new_context(viewport={"width": 320, "height": 800}, locale="id-ID")
    page = context.new_page()
    try:
        page.goto(served + "/archive")
        page.fill("#subscribe-cta-email", "pembaca@example.org")
        page.click("aside.subscribe-cta button")
        page.wait_for_selector("form.subscription")
        assert page.input_value("form.subscription input[name=email]") == "pembaca@example.org"
        assert page.get_attribute("html", "lang") == "id"
    finally:
        context.close()
