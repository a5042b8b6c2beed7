"""Gettext catalogs (Babel, the only babel import): compiled from .po at load time, cached."""

from __future__ import annotations

import functools
import io
import re
from datetime import date, datetime, tzinfo
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.core import get_global, get_locale_identifier, negotiate_locale, parse_locale
from babel.dates import format_date, format_time
from babel.messages.mofile import write_mo
from babel.messages.pofile import PoFileError, read_po
from babel.support import Translations as Translations  # re-exported for type hints

from publisher.errors import TemplateError
from publisher.resources import locale_dir

DOMAINS = ("email", "web")
_TAG = re.compile(r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*")


def _roots(user_dir: Path | None) -> list[Path]:
    """Return the catalog folders to search: the site's own (site.templates_dir/locale) first."""
    roots = [locale_dir()]
    if user_dir is not None:
        roots.insert(0, user_dir / "locale")
    return roots


def available_languages(domain: str = "email", user_dir: Path | None = None) -> list[str]:
    """List the languages with a catalog for ``domain`` (shipped or the site's own)."""
    found = {
        path.parent.parent.name
        for root in _roots(user_dir)
        for path in root.glob(f"*/LC_MESSAGES/{domain}.po")
    }
    return sorted(found)


def normalize_language(language: str) -> str:
    """Turn "id-ID", "en_US" or "EN" into the primary language subtag ("id", "en")."""
    language = (language or "").strip()
    if not _TAG.fullmatch(language):
        return ""
    return language.replace("_", "-").split("-")[0].lower()


def choose_language(*candidates: str, domain: str = "email", user_dir: Path | None = None) -> str:
    """Pick the first candidate with a catalog (subscriber, then site), else English."""
    shipped = set(available_languages(domain, user_dir))
    for candidate in candidates:
        language = normalize_language(candidate)
        if language and language in shipped:
            return language
    return "en"


#: An Accept-Language header longer than this, or with more entries, is cut (hostile input).
MAX_ACCEPT_LANGUAGE = 400
MAX_ACCEPT_ENTRIES = 16
_WEIGHT = re.compile(r"q=(0(?:\.\d{0,3})?|1(?:\.0{0,3})?)")


def accepted_languages(header: str) -> list[str]:
    """Return an Accept-Language header's language tags, most wanted first (q=0 dropped).

    Weights decide the order; equal weights keep the header's order (RFC 9110 12.5.4).
    """
    weighted: list[tuple[float, int, str]] = []
    for index, part in enumerate(header[:MAX_ACCEPT_LANGUAGE].split(",")[:MAX_ACCEPT_ENTRIES]):
        tag, _, params = part.strip().partition(";")
        tag = tag.strip()
        if not tag or (tag != "*" and not _TAG.fullmatch(tag)):
            continue
        weight = 1.0
        if params:
            found = _WEIGHT.fullmatch(params.strip().replace(" ", ""))
            if found is None:
                continue  # a malformed weight: ignore the entry rather than guess
            weight = float(found[1])
        if weight > 0:
            weighted.append((-weight, index, tag))
    return [tag for _, _, tag in sorted(weighted)]


def negotiate_language(
    header: str, default: str, domain: str = "web", user_dir: Path | None = None
) -> str:
    """Pick the shipped language the Accept-Language ``header`` prefers, else ``default``.

    Babel's negotiation matches "id-ID" to "id" and "en-GB" to "en"; "*" means the default.
    """
    shipped = available_languages(domain, user_dir)
    for tag in accepted_languages(header):
        if tag == "*":
            return default
        found = negotiate_locale([tag.replace("-", "_")], shipped, sep="_")
        if found is None:
            # Babel matches whole tags; a regional tag ("en-GB") falls back to its language.
            found = negotiate_locale([normalize_language(tag)], shipped, sep="_")
        if found is not None:
            return found
    return default


def translations(language: str, domain: str, user_dir: Path | None = None) -> Translations:
    """Return the catalog for ``language`` and ``domain`` (an empty one when none exists).

    A catalog in ``user_dir``/locale (site.templates_dir) replaces the shipped one.
    """
    language = normalize_language(language) or "en"
    for root in _roots(user_dir):
        path = root / language / "LC_MESSAGES" / f"{domain}.po"
        if path.is_file():
            return _load(path, language, domain)
    return _empty()


@functools.cache
def _empty() -> Translations:
    return Translations()


@functools.cache
def _load(path: Path, language: str, domain: str) -> Translations:
    try:
        with path.open("rb") as handle:
            catalog = read_po(handle, locale=language, domain=domain, abort_invalid=True)
    except (PoFileError, ValueError, UnicodeDecodeError) as exc:
        raise TemplateError(f"{path}: invalid gettext catalog: {exc}") from exc
    for message, errors in catalog.check():
        # A translation whose %(placeholders)s differ from the msgid would fail mid-render.
        raise TemplateError(f"{path}:{message.lineno}: {errors[0]}")
    buffer = io.BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    buffer.seek(0)
    return Translations(buffer, domain=domain)


def locale_for(language: str) -> Locale:
    """Return the Babel locale of a language, English when Babel does not know it."""
    try:
        return Locale.parse(get_locale_identifier(parse_locale(normalize_language(language))))
    except (UnknownLocaleError, ValueError):
        return Locale.parse("en")


#: Languages whose readers write a date without the weekday and its zero-padded day
#: (CLDR's "full" Indonesian form is "Selasa, 01 Desember 2026"; people write "1 Desember 2026").
_LONG_DATE_STYLE = {"id": "long"}


def long_date(day: date, language: str) -> str:
    """Format a date the way a reader writes it ("1 Desember 2026", "Tuesday, December 1, 2026")."""
    style = _LONG_DATE_STYLE.get(normalize_language(language), "full")
    return format_date(day, format=style, locale=locale_for(language))


def medium_datetime(moment: datetime, zone: tzinfo, language: str) -> str:
    """Format a moment in the reader's time zone, to the minute ("25 Nov 2026, 07.00")."""
    locale = locale_for(language)
    local = moment.astimezone(zone)
    pattern = str(locale.datetime_formats.get("medium", "{1}, {0}"))
    return pattern.format(
        format_time(local, format="short", locale=locale),
        format_date(local, format="medium", locale=locale),
    )


def og_locale(language: str) -> str:
    """Return the Open Graph locale of a language ("id" → "id_ID", "en" → "en_US")."""
    code = normalize_language(language) or "en"
    likely = str(get_global("likely_subtags").get(code, ""))
    parts = [part for part in likely.split("_") if len(part) == 2 and part.isupper()]
    return f"{code}_{parts[0]}" if parts else "en_US"


def clear_cache() -> None:
    """Forget compiled catalogs (tests edit .po files)."""
    _load.cache_clear()
