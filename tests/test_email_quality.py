"""Email that looks right: contrast in both modes (computed in Chromium), the same links in
both parts, height="auto", alt text, the preheader, Auto-Submitted, dates, SpamAssassin."""

from __future__ import annotations

import email
import email.policy
import os
import re
import shutil
import subprocess
from collections import Counter
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from publisher.render.digest import COLORS, alt_text, render_digest
from publisher.render.message import build_digest_template
from publisher.render.transactional import Notice, build_notice
from tests.render_support import make_digest, make_settings, recipient, sample_articles

BASE = "https://news.example.org"
TOKEN = "1-" + "a" * 16


def _parse(raw: bytes) -> EmailMessage:
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def _parts(message: EmailMessage) -> tuple[str, str]:
    html, text = message.get_body(("html",)), message.get_body(("plain",))
    assert html is not None
    assert text is not None
    return str(html.get_content()), str(text.get_content())


def messages() -> dict[str, bytes]:
    """Every kind of mail we send, in Indonesian, for one reader."""
    settings = make_settings()
    common: dict[str, Any] = {
        "email": "pembaca@example.net",
        "name": "Pembaca",
        "language": "id",
        "message_id": "<n.1@news.example.org>",
    }
    digest = render_digest(settings, make_digest(sample_articles(), more_count=2))
    return {
        "digest": build_digest_template(settings, digest).personalize(
            recipient(1, mail_token=TOKEN)
        ),
        "confirmation": build_notice(
            settings, Notice.CONFIRMATION, urls={"action_url": f"{BASE}/confirm/abc.def"}, **common
        ),
        "already": build_notice(
            settings,
            Notice.ALREADY_SUBSCRIBED,
            urls={
                "preferences_url": f"{BASE}/preferences/p.1",
                "unsubscribe_url": f"{BASE}/unsubscribe/u.1",
            },
            **common,
        ),
        "unsubscribed": build_notice(
            settings, Notice.UNSUBSCRIBED, urls={"action_url": f"{BASE}/subscribe"}, **common
        ),
    }


@pytest.mark.parametrize("kind", ["digest", "confirmation", "already", "unsubscribed"])
def test_both_parts_carry_the_same_links_the_same_number_of_times(kind: str) -> None:
    html, text = _parts(_parse(messages()[kind]))
    in_html = Counter(re.findall(r'href="(https?://[^"]+)"', html))
    in_text = Counter(re.findall(r"https?://[^\s<>\"\]]+", text))
    assert in_html == in_text, (kind, in_html - in_text, in_text - in_html)
    # rspamd's URI_COUNT_ODD counts them all together.
    assert (sum(in_html.values()) + sum(in_text.values())) % 2 == 0


def test_transactional_mail_is_auto_submitted_and_the_digest_is_not() -> None:
    found = messages()
    for kind in ("confirmation", "already", "unsubscribed"):
        assert _parse(found[kind])["Auto-Submitted"] == "auto-generated", kind
    assert "Auto-Submitted" not in _parse(found["digest"])


def test_lead_image_preheader_and_alt_text() -> None:
    html, _text = _parts(_parse(messages()["digest"]))
    image = re.search(r"<img [^>]*>", html)
    assert image is not None
    assert 'height="auto"' in image[0]
    lead = sample_articles()[0]
    assert f'alt="{lead.image_caption}"' not in image[0]
    # The preheader is hidden by display:none, never by a colour close to the background.
    preheader = re.search(r'<div class="preheader" style="([^"]*)">', html)
    assert preheader is not None
    assert "display:none" in preheader[1]
    assert "color" not in preheader[1]
    assert "opacity" not in preheader[1]
    assert "color:#ffffff;line-height:1px" not in html


@pytest.mark.parametrize(
    ("caption", "title", "expected"),
    [
        ("A rider swaps a battery in Denpasar.", "Battery swaps", "Battery swaps"),
        ("A rider swaps a battery. Photo taken on Monday.", "T", "A rider swaps a battery."),
        ("", "Battery swaps", "Battery swaps"),
        ("Same words", "Same words", ""),
        ("Harga cabai naik. Pedagang mengeluh.", "Pasar", "Harga cabai naik."),
    ],
)
def test_alt_text_never_copies_the_caption(caption: str, title: str, expected: str) -> None:
    assert alt_text(caption, title) == expected


def _rgb(value: str) -> tuple[float, float, float]:
    numbers = [float(n) for n in re.findall(r"[\d.]+", value)[:3]]
    return numbers[0], numbers[1], numbers[2]


def _hex(value: str) -> tuple[float, float, float]:
    return int(value[1:3], 16), int(value[3:5], 16), int(value[5:7], 16)


def contrast(first: tuple[float, float, float], second: tuple[float, float, float]) -> float:
    """Return the WCAG 2 contrast ratio of two sRGB colours."""

    def luminance(rgb: tuple[float, float, float]) -> float:
        channels = []
        for value in rgb:
            c = value / 255
            channels.append(c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4)
        return 0.2126 * channels[0] + 0.7152 * channels[1] + 0.0722 * channels[2]

    high, low = sorted((luminance(first), luminance(second)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_contrast_helper_matches_known_values() -> None:
    assert round(contrast((0, 0, 0), (255, 255, 255)), 1) == 21.0
    assert round(contrast(_hex("#777777"), _hex("#ffffff")), 2) == 4.48


_VISIBLE_TEXT = """() => {
  const background = (element) => {
    for (let e = element; e; e = e.parentElement) {
      const c = getComputedStyle(e).backgroundColor;
      if (c && c !== 'transparent' && !/,\\s*0\\)$/.test(c)) return c;
    }
    return 'rgb(255, 255, 255)';
  };
  const found = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode;
    if (!node.textContent.trim()) continue;
    const element = node.parentElement;
    const box = element.getBoundingClientRect();
    if (box.width === 0 || box.height === 0) continue;
    const style = getComputedStyle(element);
    if (style.visibility === 'hidden') continue;
    found.push({text: node.textContent.trim().slice(0, 50), color: style.color,
                background: background(element), classes: String(element.className)});
  }
  const one = (selector, property) => {
    const e = document.querySelector(selector);
    return e ? getComputedStyle(e)[property] : '';
  };
  return {texts: found,
          masthead: one('.masthead', 'color'),
          byline: one('.byline', 'color'),
          date: one('.muted div', 'color'),
          rule: one('.rule p', 'borderTopColor')};
}"""


@pytest.mark.browser
@pytest.mark.parametrize("dark", [False, True], ids=["light", "dark"])
def test_every_text_meets_wcag_aa_in_both_modes(browser: Any, dark: bool) -> None:
    for kind, raw in messages().items():
        html, _text = _parts(_parse(raw))
        page = browser.new_page(color_scheme="dark" if dark else "light")
        try:
            page.route("**/*", lambda route: route.abort())  # remote images stay away
            page.set_content(html, wait_until="domcontentloaded")
            found = page.evaluate(_VISIBLE_TEXT)
        finally:
            page.close()
        assert found["texts"], kind
        for item in found["texts"]:
            ratio = contrast(_rgb(item["color"]), _rgb(item["background"]))
            assert ratio >= 4.5, (kind, "dark" if dark else "light", item, round(ratio, 2))
        muted = COLORS["dark_muted" if dark else "muted"]
        if kind == "digest":
            # The muted grey shows (a text block's own colour does not win over it).
            assert _rgb(found["date"]) == _hex(muted)
            assert _rgb(found["byline"]) == _hex(muted)
        text_colour = COLORS["dark_text" if dark else "text"]
        assert _rgb(found["masthead"]) == _hex(text_colour)  # never link-blue
        rule = COLORS["dark_rule" if dark else "rule"]
        assert _rgb(found["rule"]) == _hex(rule)  # no light line glaring on a dark card


def _spamassassin() -> str:
    found = shutil.which("spamassassin")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("spamassassin is missing (.ci/system-deps installs it)")
        pytest.skip("spamassassin is missing")
    return found


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["digest", "confirmation"])
def test_spamassassin_scores_no_rule_above_zero(kind: str, tmp_path: Path) -> None:
    binary = _spamassassin()
    prefs = tmp_path / "user_prefs"
    prefs.write_text("use_bayes 0\n")
    result = subprocess.run(
        [binary, "-L", "-t", "-p", str(prefs)],  # -L: local tests only, no network
        input=messages()[kind],
        capture_output=True,
        timeout=300,
        check=False,
        env={**os.environ, "HOME": str(tmp_path)},
    )
    report = result.stdout.decode("utf-8", "replace")
    table = report.split("---- ----------------------", 1)
    assert len(table) == 2, report[-2000:]
    scores = re.findall(r"^\s*(-?\d+(?:\.\d+)?)\s+([A-Z0-9_]+)\s", table[1], re.M)
    assert scores, report[-2000:]
    above = [(rule, float(points)) for points, rule in scores if float(points) > 0]
    assert not above, above
