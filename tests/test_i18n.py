"""Gettext catalogs: complete in Indonesian and English, compiled at load, dates localized."""

from __future__ import annotations

import ast
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from publisher.render import i18n
from publisher.resources import locale_dir, templates_root

ROOT = Path(__file__).resolve().parent.parent


def _catalog(language: str, domain: str = "email") -> dict[str, object]:
    with (locale_dir() / language / "LC_MESSAGES" / f"{domain}.po").open("rb") as handle:
        catalog = read_po(handle, locale=language)
    return {
        message.id if isinstance(message.id, str) else message.id[0]: message.string
        for message in catalog
        if message.id
    }


def _used_msgids() -> set[str]:
    """Collect every msgid the renderer uses: gettext calls in Python and in the templates."""
    found: set[str] = set()
    for path in (ROOT / "publisher" / "render").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name | ast.Attribute)
                and (getattr(node.func, "id", None) or getattr(node.func, "attr", None))
                in {"_", "gettext", "ngettext"}
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                found.add(node.args[0].value)
    method_map = [("**.j2", "jinja2")]
    options = {"**.j2": {"extensions": "jinja2.ext.i18n"}}
    for extracted in extract_from_dir(
        str(templates_root() / "email"), method_map, options_map=options
    ):
        message = extracted[2]
        found.add(message if isinstance(message, str) else message[0])
    return found


@pytest.mark.parametrize("language", ["id", "en"])
def test_catalog_has_every_string_translated(language: str) -> None:
    catalog = _catalog(language)
    used = _used_msgids()
    assert len(used) > 20
    missing = sorted(used - set(catalog))
    assert not missing, f"{language}/email.po lacks {missing}"
    for msgid, string in catalog.items():
        strings = string if isinstance(string, tuple) else (string,)
        assert all(strings), f"{language}: untranslated {msgid!r}"
        for text in strings:
            for placeholder in ("%(site)s", "%(name)s", "%(num)d", "%(frequency)s"):
                assert (placeholder in msgid) == (placeholder in text), (msgid, text)


def test_indonesian_is_actually_indonesian() -> None:
    id_strings = i18n.translations("id", "email")
    assert id_strings.gettext("Unsubscribe") == "Berhenti berlangganan"
    assert id_strings.gettext("Read more") == "Baca selengkapnya"
    more = id_strings.ngettext(
        "%(num)d more article on our website", "%(num)d more articles on our website", 5
    )
    assert more % {"num": 5} == "5 artikel lainnya di situs kami"
    en_strings = i18n.translations("en", "email")
    one = en_strings.ngettext(
        "%(num)d more article on our website", "%(num)d more articles on our website", 1
    )
    assert one % {"num": 1} == "1 more article on our website"


def test_web_catalogs_load() -> None:
    for language in ("id", "en"):
        assert i18n.translations(language, "web") is i18n.translations(language, "web")


def test_language_choice_and_fallback() -> None:
    assert i18n.choose_language("id-ID", "en") == "id"
    assert i18n.choose_language("EN_us", "id") == "en"
    assert i18n.choose_language("", "id") == "id"
    assert i18n.choose_language("fr", "de") == "en"
    assert i18n.choose_language("<script>", "id") == "id"
    assert i18n.translations("xx", "email").gettext("Read more") == "Read more"


def test_dates_are_localized() -> None:
    # Indonesian writes "1 Desember 2026": no weekday, no zero-padded day.
    assert i18n.long_date(date(2026, 11, 25), "id") == "25 November 2026"
    assert i18n.long_date(date(2026, 12, 1), "id") == "1 Desember 2026"
    assert i18n.long_date(date(2026, 11, 25), "en") == "Wednesday, November 25, 2026"
    late = datetime(2026, 11, 24, 23, 30, tzinfo=UTC)
    assert "25 Nov 2026" in i18n.medium_datetime(late, ZoneInfo("Asia/Jayapura"), "id")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('msgid "x"\nfoo bar\n', "invalid gettext catalog"),
        ('#, python-format\nmsgid "Hi %(name)s"\nmsgstr "Halo %(nama)s"\n', "email.po:2"),
    ],
)
def test_broken_catalog_is_a_template_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, message: str
) -> None:
    from publisher.errors import TemplateError

    folder = tmp_path / "locale" / "id" / "LC_MESSAGES"
    folder.mkdir(parents=True)
    (folder / "email.po").write_text(text, encoding="utf-8")
    monkeypatch.setattr(i18n, "locale_dir", lambda: tmp_path / "locale")
    with pytest.raises(TemplateError, match=message):
        i18n.translations("id", "email")


def test_site_catalog_overrides_and_adds_languages(tmp_path: Path) -> None:
    from publisher.render.digest import render_digest
    from tests.render_support import make_digest, make_settings, sample_articles

    shipped = (locale_dir() / "id" / "LC_MESSAGES" / "email.po").read_text(encoding="utf-8")
    own = tmp_path / "mine" / "locale"
    (own / "id" / "LC_MESSAGES").mkdir(parents=True)
    (own / "id" / "LC_MESSAGES" / "email.po").write_text(
        shipped.replace('msgstr "Baca selengkapnya"', 'msgstr "Baca lebih lanjut"'),
        encoding="utf-8",
    )
    (own / "jv" / "LC_MESSAGES").mkdir(parents=True)
    (own / "jv" / "LC_MESSAGES" / "email.po").write_text(
        shipped.replace("Language: id", "Language: jv").replace(
            'msgstr "Baca selengkapnya"', 'msgstr "Waca sakteruse"'
        ),
        encoding="utf-8",
    )
    settings = make_settings(tmp_path, site={"templates_dir": str(tmp_path / "mine")})
    compiled = render_digest(settings, make_digest(sample_articles(), "id"))
    assert "Baca lebih lanjut" in compiled.text
    assert "Baca selengkapnya" not in compiled.html
    javanese = render_digest(settings, make_digest(sample_articles(), "jv"))
    assert javanese.language == "jv"
    assert "Waca sakteruse" in javanese.text
