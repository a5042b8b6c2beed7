"""Digest rendering: content, plain text, size limit, templates and their errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from publisher.errors import TemplateError
from publisher.render import mjml as mjml_module
from publisher.render.digest import HTML_LIMIT, SLOTS, render_digest
from publisher.render.plaintext import WIDTH
from tests.render_support import (
    hostile_article,
    make_digest,
    make_settings,
    sample_articles,
)


def test_digest_html_has_every_part_in_indonesian() -> None:
    articles = sample_articles()
    compiled = render_digest(make_settings(), make_digest(articles, more_count=3))
    html = compiled.html
    lead = articles[0]
    assert compiled.language == "id"
    assert '<html lang="id"' in html
    assert "25 November 2026" in html
    assert "Rabu, 25 November" not in html
    assert compiled.subject == f"Kabar Nusantara: {lead.title}"
    assert f"<title>{compiled.subject}</title>" in html
    # Preheader: hidden text first in the body, the lead's summary.
    preheader = re.search(
        r'<div class="preheader" style="display:\s*none[^"]*">(.*?)</div>', html, re.S
    )
    assert preheader is not None
    assert preheader[1].startswith(lead.summary[:60])
    # Lead image with width, height and alt, then caption and credit.
    image = re.search(r"<img [^>]*>", html)
    assert image is not None
    assert f'src="{lead.image_url}"' in image[0]
    assert 'width="552"' in image[0]
    # height="auto" as the reference MJML compiler writes it (Yahoo stretches a pixel height).
    assert 'height="auto"' in image[0]
    # The caption is shown under the image: the alt text is the title, not a copy of it.
    assert f'alt="{lead.title}"' in image[0]
    assert lead.image_credit in html
    for article in articles:
        assert f'href="https://news.example.org/articles/{article.slug}"' in html
        assert article.title.replace('"', "&#34;") in html
    # One link per article in each part (the title in HTML, "Read more" in text): the
    # parts carry the same links the same number of times (rspamd URI_COUNT_ODD).
    assert compiled.text.count("Baca selengkapnya") == len(articles)
    assert "3 artikel lainnya di situs kami" in html
    # Footer: why, postal address, unsubscribe / preferences / browser links.
    assert "Anda menerima email ini karena berlangganan rangkuman harian Kabar Nusantara" in html
    assert "Jl. Merdeka Barat 9, Jakarta 10110, Indonesia" in html
    for label in ("Berhenti berlangganan", "Atur preferensi", "Lihat di peramban"):
        assert label in html
    assert f'href="{compiled.tokens["unsubscribe_url"]}"' in html
    assert f'href="{compiled.tokens["preferences_url"]}"' in html
    # Styles from <mj-style inline="inline"> were inlined; dark mode stays in <head>.
    assert "overflow-wrap: anywhere" in html
    assert "prefers-color-scheme: dark" in html
    assert 'name="color-scheme" content="light dark"' in html


def test_english_digest_and_language_fallback() -> None:
    compiled = render_digest(make_settings(), make_digest(sample_articles(), "en-GB"))
    assert compiled.language == "en"
    assert "Wednesday, November 25, 2026" in compiled.html
    assert "Read more" in compiled.text
    assert "Unsubscribe" in compiled.html
    # A language without a catalog falls back to site.language (id).
    assert render_digest(make_settings(), make_digest(sample_articles(), "fr")).language == "id"


def test_text_part_is_built_from_the_data_and_wrapped() -> None:
    articles = sample_articles()
    compiled = render_digest(make_settings(), make_digest(articles))
    text = compiled.text
    assert "<" not in text.replace(compiled.tokens["greeting"], "")
    assert text.startswith("KABAR NUSANTARA\nhttps://news.example.org/\n25 November 2026\n")
    for line in text.splitlines():
        if not re.match(r"(\[\d+\] )?https?://", line) and "pub" not in line:
            assert len(line) <= WIDTH, line
    for article in articles:
        assert f"https://news.example.org/articles/{article.slug}" in text
    links = re.findall(r"^\[(\d+)\] https://", text, re.M)
    assert links == [str(n) for n in range(1, len(articles) + 1)]
    assert "Baca selengkapnya: [1]" in text
    assert f"({articles[0].image_credit})" in " ".join(text.split())


def test_every_slot_appears_in_both_parts() -> None:
    compiled = render_digest(make_settings(), make_digest(sample_articles()))
    for slot in ("greeting", "email", "unsubscribe_url", "preferences_url"):
        assert compiled.tokens[slot] in compiled.html
        assert compiled.tokens[slot] in compiled.text
    assert set(compiled.tokens) == set(SLOTS)
    assert len({*compiled.tokens.values()}) == len(SLOTS)


def test_hostile_content_is_escaped() -> None:
    compiled = render_digest(make_settings(), make_digest([hostile_article(), *sample_articles()]))
    html = compiled.html
    assert "<script" not in html
    assert "<style>body{display:none}" not in html
    assert "onerror=alert" not in html
    assert 'onerror="alert' not in html
    assert "&lt;script&gt;" in html
    assert "\r" not in compiled.subject
    assert "\n" not in compiled.subject
    assert "Bcc: victim@example.com" in compiled.subject  # kept as text, on one line
    assert "\n\nInjected" not in compiled.text


def test_oversized_digest_switches_to_title_and_summary() -> None:
    base = sample_articles()
    articles = []
    for number in range(60):
        article = base[number % len(base)]
        clone = type(article)(
            **{
                column.key: getattr(article, column.key)
                for column in type(article).__table__.columns
            }
        )
        clone.id = number + 1
        clone.slug = f"{article.slug}-{number}"
        clone.summary = (article.summary + " ") * 6
        articles.append(clone)
    compiled = render_digest(make_settings(), make_digest(articles))
    size = len(compiled.html.encode("utf-8"))
    assert size <= HTML_LIMIT
    assert compiled.compacted > 0
    assert "Baca rangkuman lengkap di situs kami" in compiled.html
    assert 'href="https://news.example.org/"' in compiled.html
    # The lead keeps its image and "read more"; every article is still listed.
    assert compiled.html.count("<img ") == 1
    for article in articles:
        assert f'/articles/{article.slug}"' in compiled.html


def test_far_too_many_articles_still_fit() -> None:
    article = sample_articles()[0]
    articles = []
    for number in range(400):
        clone = type(article)(
            id=number + 1,
            slug=f"a-{number}",
            title=f"{article.title} {number}",
            summary=article.summary,
            language="id",
        )
        articles.append(clone)
    compiled = render_digest(make_settings(), make_digest(articles))
    assert len(compiled.html.encode("utf-8")) <= HTML_LIMIT
    assert re.search(r"\d+ artikel lainnya di situs kami", compiled.html)


def _user_templates(tmp_path: Path, name: str, text: str) -> Path:
    folder = tmp_path / "mytemplates"
    (folder / "email").mkdir(parents=True, exist_ok=True)
    (folder / "email" / name).write_text(text, encoding="utf-8")
    return folder


def test_user_template_overrides_the_builtin(tmp_path: Path) -> None:
    folder = _user_templates(
        tmp_path,
        "digest.mjml.j2",
        "<mjml><mj-body><mj-section><mj-column><mj-text>Custom {{ greeting }} "
        '{% for a in rest %}{{ a.title }}{% endfor %}<a href="{{ links.unsubscribe }}">x</a>'
        "</mj-text></mj-column></mj-section></mj-body></mjml>\n",
    )
    settings = make_settings(tmp_path, site={"templates_dir": str(folder)})
    compiled = render_digest(settings, make_digest(sample_articles()))
    assert "Custom " + compiled.tokens["greeting"] in compiled.html


@pytest.mark.parametrize(
    ("source", "line", "message"),
    [
        (
            "<mjml>\n<mj-body>\n{% for a in rest %}\n{{ a.title }\n{% endfor %}</mj-body></mjml>",
            4,
            "",
        ),
        ("<mjml>\n<mj-body>\n{{ no_such_value }}\n</mj-body></mjml>", 3, "no_such_value"),
        (
            "<mjml>\n<mj-body>\n<mj-section><mj-column>\n<mj-text>{{ greeting }}\n"
            "</mj-column></mj-section>\n</mj-body></mjml>",
            4,
            "<mj-text> is not closed",
        ),
        (
            "<mjml>\n<mj-body>\n<mj-section>\n<mj-colum></mj-colum>\n</mj-section></mj-body></mjml>",
            4,
            "unknown MJML element <mj-colum>",
        ),
        ("<mjml>\n<mj-body>\n\n<mj-section>a < b</mj-section></mj-body></mjml>", 4, "stray '<'"),
    ],
)
def test_broken_template_names_file_and_line(
    tmp_path: Path, source: str, line: int, message: str
) -> None:
    folder = _user_templates(tmp_path, "digest.mjml.j2", source)
    settings = make_settings(tmp_path, site={"templates_dir": str(folder)})
    with pytest.raises(TemplateError) as caught:
        render_digest(settings, make_digest(sample_articles()))
    text = str(caught.value)
    assert f"digest.mjml.j2:{line}" in text
    assert message in text
    assert "\n" not in text


def test_mjml_that_only_the_compiler_rejects_is_reported() -> None:
    with pytest.raises(TemplateError) as caught:
        mjml_module.compile_mjml("<mjml><mj-body>", template="t.mjml.j2")
    assert "t.mjml.j2" in str(caught.value)
    assert "<mj-body> is not closed" in str(caught.value)
