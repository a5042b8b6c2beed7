"""Render digests in real headless Chromium: no horizontal scroll from 320 to 600 px, dark mode."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any

import pytest

from publisher.render.digest import render_digest
from publisher.render.transactional import notice_template
from tests.render_support import hostile_article, make_digest, make_settings, sample_articles

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "email"
WIDTHS = (320, 375, 600)

pytestmark = pytest.mark.browser


def _png(width: int, height: int) -> bytes:
    """Encode a plain grey PNG of the given size (the lead images are remote in real mail)."""
    row = b"\x00" + b"\x90\x99\xa0" * width
    raw = zlib.compress(row * height)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def _open(browser: Any, html: str, width: int, *, dark: bool = False) -> Any:
    page = browser.new_page(
        viewport={"width": width, "height": 900}, color_scheme="dark" if dark else "light"
    )
    image = _png(1200, 800)

    def serve(route: Any) -> None:
        if route.request.resource_type == "image":
            route.fulfill(status=200, content_type="image/png", body=image)
        else:
            route.abort()

    page.route("**/*", serve)
    page.set_content(html, wait_until="load")
    return page


def _overflow(page: Any) -> dict[str, int]:
    result: dict[str, int] = page.evaluate(
        """() => ({
            scroll: document.documentElement.scrollWidth,
            client: document.documentElement.clientWidth,
            widest: Math.max(...[...document.body.querySelectorAll('*')]
                .map(e => e.getBoundingClientRect().right)),
        })"""
    )
    return result


def _check(browser: Any, html: str, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for width in WIDTHS:
        page = _open(browser, html, width)
        try:
            sizes = _overflow(page)
            page.screenshot(path=str(ARTIFACTS / f"{name}-{width}.png"), full_page=True)
            assert sizes["scroll"] <= sizes["client"], (name, width, sizes)
            assert sizes["widest"] <= width + 0.5, (name, width, sizes)
        finally:
            page.close()


@pytest.mark.parametrize("language", ["id", "en"])
def test_sample_digest_fits_every_width(browser: Any, language: str) -> None:
    compiled = render_digest(make_settings(), make_digest(sample_articles(), language))
    html, _ = compiled.fill({"greeting": compiled.greeting("Siti Rahayu")})
    _check(browser, html, f"digest-{language}")


def test_hostile_digest_fits_every_width(browser: Any) -> None:
    articles = [hostile_article(1), *sample_articles()[:3], hostile_article(2)]
    compiled = render_digest(make_settings(), make_digest(articles))
    name = "Nama" + "Sangatpanjang" * 20
    html, _ = compiled.fill({"greeting": compiled.greeting(name), "email": "x" * 120 + "@a.id"})
    _check(browser, html, "digest-hostile")
    page = _open(browser, html, 375)
    try:
        # No injected script ran and no injected element exists.
        assert page.evaluate("() => document.querySelectorAll('script, body style').length") == 0
        assert page.evaluate("() => document.querySelectorAll('img[onerror]').length") == 0
    finally:
        page.close()


@pytest.mark.parametrize("kind", ["confirmation", "already_subscribed", "unsubscribed"])
def test_notices_fit_every_width(browser: Any, kind: str) -> None:
    template = notice_template(make_settings(), kind, "id")
    message = template.fill(
        email="siti@example.net",
        name="Siti",
        message_id="<n1@news.example.org>",
        urls={
            "action_url": "https://news.example.org/confirm/" + "t" * 180,
            "preferences_url": "https://news.example.org/preferences/p",
            "unsubscribe_url": "https://news.example.org/unsubscribe/u",
        },
    )
    import email
    from email import policy

    parsed = email.message_from_bytes(message, policy=policy.default)
    body = parsed.get_body(("html",))
    assert body is not None
    _check(browser, body.get_content(), f"notice-{kind}")


def _colors(page: Any) -> dict[str, str]:
    result: dict[str, str] = page.evaluate(
        """() => {
            const title = document.querySelector('.prose h1 a');
            const card = document.querySelector('.card');
            return {
                text: getComputedStyle(title).color,
                card: getComputedStyle(card).backgroundColor,
            };
        }"""
    )
    return result


def _luminance(css: str) -> float:
    parts = [float(p) for p in css[css.index("(") + 1 : css.index(")")].split(",")[:3]]
    return (0.2126 * parts[0] + 0.7152 * parts[1] + 0.0722 * parts[2]) / 255


def test_dark_mode_keeps_text_readable(browser: Any) -> None:
    compiled = render_digest(make_settings(), make_digest(sample_articles()))
    html, _ = compiled.fill({"greeting": compiled.greeting("Siti")})
    light = _open(browser, html, 600)
    dark = _open(browser, html, 600, dark=True)
    try:
        light_colors, dark_colors = _colors(light), _colors(dark)
        dark.screenshot(path=str(ARTIFACTS / "digest-dark-600.png"), full_page=True)
    finally:
        light.close()
        dark.close()
    assert _luminance(light_colors["text"]) < 0.3 < 0.7 < _luminance(light_colors["card"])
    assert _luminance(dark_colors["card"]) < 0.3 < 0.7 < _luminance(dark_colors["text"])
