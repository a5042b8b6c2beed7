"""Import plain text copied or scraped from a news page: headline, captions, body, editors."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html import escape

from publisher.content.store import ArticleDraft
from publisher.errors import InputError
from publisher.ingest.options import ImportOptions
from publisher.ingest.source import SourceText

MIN_HEADLINE_WORDS = 4
MAX_HEADLINE_WORDS = 30
MAX_HEADLINE_CHARS = 250
MAX_LABEL_WORDS = 3
MAX_HEADING_WORDS = 8
MAX_CAPTION_CHARS = 400

# A credit closes a caption: "(Foto: Reuters)", "(Foto: via AP)", "(Photo: AFP)".
_CREDIT = re.compile(
    r"\(\s*(?P<credit>(?:foto|photo|photograph|gambar|image|picture|pic|ilustrasi|illustration"
    r"|grafis|graphic|infografis|video|sumber|source|credit|kredit)\s*:\s*[^()]{1,120}?)\s*\)\s*$",
    re.IGNORECASE,
)
# Editor initials close the last paragraph: "[ab/cd]" or "[ab]".
_EDITORS = re.compile(r"\s*\[\s*(?P<initials>[^\W\d_]{1,6}(?:\s*/\s*[^\W\d_]{1,6}){0,4})\s*\]\s*$")
_NOT_INITIALS = {"sic", "ed", "sik"}
_SKIP_LINK = re.compile(
    r"^(?:langsung|lompat|loncat|pergi|menuju|kembali|lewati|skip|jump|go|back|return)"
    r"\s+(?:ke|to|navigation|the)\b",
    re.IGNORECASE,
)
_MENU_SEPARATOR = re.compile(r"\s(?:\||›|»|>|·|•)\s")
_AUTHOR = re.compile(
    r"^(?:oleh|penulis|reporter|wartawan|by|written by|words by|author)\s*:?\s+(?P<name>.+)$",
    re.IGNORECASE,
)
_EDITOR_LINE = re.compile(r"^(?:editor|penyunting)\s*:\s*(?P<name>.+)$", re.IGNORECASE)
_READ_ALSO = re.compile(
    r"^(?:baca juga|baca pula|lihat juga|simak juga|read also|read more|see also|also read)"
    r"\s*[:：\-–—]\s*\S",
    re.IGNORECASE,
)
_READ_ALSO_LABELS = {"baca juga", "baca pula", "lihat juga", "simak juga", "read also", "see also"}
_BULLET = re.compile(r"^[•●▪‣◦\-–*]\s+(?P<item>\S.*)$")
_SENTENCE_END = (".", "!", "?", "…", '"', "”", "’")
_TERMINAL = (*_SENTENCE_END, "»", ")", "]", ":", ";")
# Indonesian and English day and month names, time zones and update labels.
_DATE_WORDS = frozenset(
    re.findall(
        r"\S+",
        """
        senin selasa rabu kamis jumat jum'at sabtu minggu ahad
        monday tuesday wednesday thursday friday saturday sunday
        mon tue tues wed thu thur thurs fri sat sun
        januari februari maret april mei juni juli agustus september oktober november desember
        january february march may june july august october december
        jan feb mar apr jun jul aug agu agt sep sept okt oct nov des dec
        wib wita wit utc gmt am pm pukul jam diperbarui diperbaharui dipublikasikan
        diterbitkan terbit updated published posted last on at
        """,
    )
)
_ALNUM = re.compile(r"[^\W_]")
_DIGIT = re.compile(r"\d")
_DATE_TOKEN = re.compile(r"[\w']+")
_FONT_SIZES = {"xs", "s", "sm", "m", "md", "l", "lg", "xl", "xxl", "a", "a-", "a+", "aa"}

# Short standalone lines that are site furniture wherever they appear.
CHROME_LABELS = {
    # Indonesian
    "iklan",
    "advertorial",
    "bagikan",
    "bagikan artikel",
    "bagikan artikel ini",
    "bagikan berita",
    "bagikan ke",
    "salin tautan",
    "salin link",
    "tautan disalin",
    "kirim",
    "cetak",
    "simpan",
    "ukuran huruf",
    "ukuran teks",
    "ukuran font",
    "dengarkan",
    "dengarkan artikel",
    "dengarkan berita",
    "gulir untuk melanjutkan",
    "scroll untuk melanjutkan",
    "lanjutkan membaca",
    "komentar",
    "tulis komentar",
    "kolom komentar",
    "forum",
    "diskusi",
    "topik",
    "tag",
    "tags",
    "rekomendasi",
    "rekomendasi untuk anda",
    "artikel terkait",
    "berita terkait",
    "terkait",
    "baca juga",
    "baca pula",
    "lihat juga",
    "simak juga",
    "terpopuler",
    "populer",
    "terbaru",
    "berita terbaru",
    "pilihan redaksi",
    "lainnya",
    "selengkapnya",
    # English
    "advertisement",
    "advertisment",
    "sponsored",
    "share",
    "share this",
    "share this article",
    "share on",
    "copy link",
    "link copied",
    "send",
    "print",
    "save",
    "font size",
    "text size",
    "listen",
    "listen to this article",
    "scroll to continue",
    "scroll to continue with content",
    "continue reading",
    "comment",
    "comments",
    "add a comment",
    "leave a comment",
    "discussion",
    "topics",
    "recommended",
    "recommended for you",
    "related",
    "related articles",
    "related stories",
    "related content",
    "read also",
    "read more",
    "see also",
    "most read",
    "most popular",
    "latest",
    "more",
    "more from",
    "more on this topic",
    "more stories",
    # Share targets
    "facebook",
    "twitter",
    "x",
    "whatsapp",
    "telegram",
    "line",
    "linkedin",
    "pinterest",
    "reddit",
    "email",
    "e-mail",
    "messenger",
}
# Labels that open the furniture after an article (recommendations, comments, related links).
TRAILING_SECTIONS = {
    "rekomendasi",
    "rekomendasi untuk anda",
    "artikel terkait",
    "berita terkait",
    "terkait",
    "baca juga",
    "lihat juga",
    "terpopuler",
    "berita terbaru",
    "pilihan redaksi",
    "komentar",
    "tulis komentar",
    "kolom komentar",
    "forum",
    "recommended",
    "recommended for you",
    "related",
    "related articles",
    "related stories",
    "related content",
    "read more",
    "see also",
    "most read",
    "most popular",
    "more from",
    "more on this topic",
    "more stories",
    "comments",
    "add a comment",
    "leave a comment",
}


@dataclass
class _Line:
    number: int
    text: str
    blank_before: bool


@dataclass
class _Caption:
    text: str
    credit: str


@dataclass
class _Parts:
    blocks: list[tuple[str, str]] = field(default_factory=list)  # (kind, html)
    first_paragraph: str = ""
    lead: _Caption | None = None


def parse_text(source: SourceText, options: ImportOptions, *, name: str = "") -> ArticleDraft:
    """Turn text scraped from a news page into an ArticleDraft, or raise InputError."""
    name = name or str(source.path)
    lines = _lines(source.text)
    headline_at = _find_headline(lines, name)
    headline = lines[headline_at]
    body, editors = _cut_trailing_chrome(lines[headline_at + 1 :])
    author, editor_names, body = _strip_front_matter(body)
    if not body:
        raise InputError(f"{name}:{headline.number}: no body text after the headline")
    parts = _build_body(body)
    if not parts.first_paragraph and not parts.blocks:
        raise InputError(f"{name}:{headline.number}: no body text after the headline")
    lead = parts.lead
    return ArticleDraft(
        title=headline.text,
        body_html="\n".join(html for _, html in parts.blocks),
        body_source=source.text,
        source_format="text",
        summary=parts.first_paragraph,
        author=author,
        language=options.language,
        image_caption=lead.text if lead else "",
        image_credit=lead.credit if lead else "",
        origin=str(source.path.resolve()) if not name.startswith(("http:", "https:")) else name,
        editors=[*editor_names, *editors],
    )


def _lines(text: str) -> list[_Line]:
    text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    found: list[_Line] = []
    blank = True
    for number, raw in enumerate(text.split("\n"), start=1):
        cleaned = _clean(raw)
        if not cleaned:
            blank = True
            continue
        found.append(_Line(number, cleaned, blank))
        blank = False
    return found


_INVISIBLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200d\u2060\ufeff\ud800-\udfff]")


def _clean(raw: str) -> str:
    return " ".join(_INVISIBLE.sub("", raw).split())


def _key(text: str) -> str:
    return text.casefold().rstrip(":：").strip()


def _words(text: str) -> list[str]:
    return [word for word in text.split() if _ALNUM.search(word)]


def _word_count(text: str, cap: int = 64) -> int:
    """Count words (tokens with a letter or digit), stopping at ``cap``: lines can be huge."""
    count = 0
    for word in text.split(None, cap * 2):
        if _ALNUM.search(word):
            count += 1
            if count >= cap:
                break
    return count


def is_chrome_label(text: str) -> bool:
    """Tell whether a standalone line is site furniture (share, comment, menu labels)."""
    key = _key(text)
    return key in CHROME_LABELS or _SKIP_LINK.match(text) is not None


def _is_label(text: str) -> bool:
    return _word_count(text, MAX_LABEL_WORDS + 1) <= MAX_LABEL_WORDS and not text.endswith(
        (".", "!", "?", "…")
    )


def _is_date_line(text: str) -> bool:
    if _DIGIT.search(text) is None:
        return False
    return all(
        token[0].isdigit() or token[0].casefold() in _DATE_WORDS
        for token in _DATE_TOKEN.finditer(text)
    )


def _is_menu(text: str) -> bool:
    pieces = [p for p in _MENU_SEPARATOR.split(text) if p.strip()]
    return len(pieces) >= 3 and all(
        _word_count(p, MAX_LABEL_WORDS + 1) <= MAX_LABEL_WORDS for p in pieces
    )


def _caption_of(text: str) -> _Caption | None:
    if len(text) > MAX_CAPTION_CHARS:
        return None
    match = _CREDIT.search(text)
    if match is None:
        return None
    credit = " ".join(match["credit"].split())
    return _Caption(text[: match.start()].strip(), credit)


def split_credit(text: str) -> tuple[str, str]:
    """Split "caption (Foto: Reuters)" into ("caption", "Foto: Reuters")."""
    text = " ".join(text.split())
    caption = _caption_of(text)
    if caption is None:
        return text, ""
    return caption.text, caption.credit


def _find_headline(lines: list[_Line], name: str) -> int:
    for index, line in enumerate(lines):
        text = line.text
        if _is_label(text) or is_chrome_label(text) or _is_menu(text) or _is_date_line(text):
            continue
        if _caption_of(text) is not None:
            continue
        count = _word_count(text, MAX_HEADLINE_WORDS + 1)
        if count > MAX_HEADLINE_WORDS or len(text) > MAX_HEADLINE_CHARS:
            raise InputError(
                f"{name}:{line.number}: no headline before the first paragraph (this line "
                f"is too long for one; put the headline, {MIN_HEADLINE_WORDS} to "
                f"{MAX_HEADLINE_WORDS} words, on its own line above it)"
            )
        words = _words(text)
        if count >= MIN_HEADLINE_WORDS and sum(w.isalpha() for w in words) >= 2:
            return index
    raise InputError(
        f"{name}:1: no headline found (expected a line of {MIN_HEADLINE_WORDS} to "
        f"{MAX_HEADLINE_WORDS} words, the article's title, above the body)"
    )


def _editors_match(text: str, *, standalone: bool) -> re.Match[str] | None:
    match = _EDITORS.search(text)
    if match is None:
        return None
    initials = [part.strip() for part in match["initials"].split("/")]
    if any(part.casefold() in _NOT_INITIALS for part in initials):
        return None
    if len(initials) < 2 and not standalone and match.start() > 0:
        # "[ab]" alone is initials; "[ab]" after prose may be an editorial insertion.
        return None
    return match


def _cut_trailing_chrome(body: list[_Line]) -> tuple[list[_Line], list[str]]:
    editors: list[str] = []
    end = len(body)
    for index in range(len(body) - 1, -1, -1):
        text = body[index].text
        match = _editors_match(text, standalone=_EDITORS.fullmatch(text) is not None)
        if match is None:
            continue
        editors = [part.strip() for part in match["initials"].split("/") if part.strip()]
        rest = text[: match.start()].rstrip()
        line = body[index]
        body = body[:index]
        if rest:
            body.append(_Line(line.number, rest, line.blank_before))
        end = len(body)
        break
    else:
        end = _trailing_section_start(body)
    body = body[:end]
    while body and (_is_label(body[-1].text) or is_chrome_label(body[-1].text)):
        body.pop()
    return body, editors


def _is_article_paragraph(text: str) -> bool:
    return _word_count(text, 15) >= 15 and text.endswith((".", "!", "?", "…", '"', "”", "’"))


def _trailing_section_start(body: list[_Line]) -> int:
    # Whether a real paragraph follows each line, computed once (a scrape may hold
    # thousands of label lines).
    paragraph_after = [False] * (len(body) + 1)
    for index in range(len(body) - 1, -1, -1):
        paragraph_after[index] = paragraph_after[index + 1] or _is_article_paragraph(
            body[index].text
        )
    seen_paragraph = False
    for index, line in enumerate(body):
        if (
            seen_paragraph
            and _key(line.text) in TRAILING_SECTIONS
            and not paragraph_after[index + 1]
        ):
            return index
        if _word_count(line.text, MAX_LABEL_WORDS + 1) > MAX_LABEL_WORDS:
            seen_paragraph = True
    return len(body)


def _strip_front_matter(body: list[_Line]) -> tuple[str, list[str], list[_Line]]:
    """Drop labels, bylines and date lines between the headline and the first paragraph."""
    author = ""
    editors: list[str] = []
    index = 0
    while index < len(body):
        text = body[index].text
        short = _word_count(text, 7) <= 6 and not text.endswith((".", "!", "?"))
        by = _AUTHOR.match(text) if short else None
        edited = _EDITOR_LINE.match(text) if short else None
        if by is not None and not author:
            author = by["name"].strip()
        elif edited is not None:
            editors.append(edited["name"].strip())
        elif not (
            _is_label(text) or is_chrome_label(text) or _is_date_line(text) or _is_menu(text)
        ):
            break
        index += 1
    return author, editors, body[index:]


def _build_body(body: list[_Line]) -> _Parts:
    parts = _Parts()
    items = _drop_inline_chrome(body)
    last_caption: _Caption | None = None
    last_plain = ""
    paragraph: list[str] = []
    bullets: list[str] = []

    def flush() -> None:
        if paragraph:
            text = " ".join(paragraph)
            parts.blocks.append(("p", f"<p>{escape(text, quote=False)}</p>"))
            if not parts.first_paragraph:
                parts.first_paragraph = text
            paragraph.clear()
        if bullets:
            inner = "".join(f"<li>{escape(item, quote=False)}</li>" for item in bullets)
            parts.blocks.append(("ul", f"<ul>{inner}</ul>"))
            bullets.clear()

    for position, line in enumerate(items):
        text = line.text
        caption = _caption_of(text)
        following = items[position + 1] if position + 1 < len(items) else None
        if caption is None and following is not None and len(text) <= MAX_CAPTION_CHARS:
            twin = _caption_of(following.text)
            if following.text == text or (twin is not None and twin.text == text):
                # Alt text followed by the visible caption: keep the fuller copy, once.
                caption = twin or _Caption(text, "")
        if caption is not None:
            flush()
            same = last_caption is not None and _same_caption(last_caption, caption)
            if not same:
                parts.blocks.append(("figure", _figure(caption)))
                if parts.lead is None:
                    parts.lead = caption
            elif last_caption is not None and caption.credit and not last_caption.credit:
                last_caption.credit = caption.credit
            last_caption = caption
            last_plain = ""
            continue
        if last_caption is not None and text == last_caption.text:
            continue  # the credited copy came first and the bare alt text after it
        if text == last_plain and line.blank_before and len(text) > MAX_CAPTION_CHARS:
            continue  # a long block scraped twice
        last_caption = None
        bullet = _BULLET.match(text)
        if bullet is not None:
            if paragraph:
                flush()
            bullets.append(bullet["item"])
            last_plain = text
            continue
        if line.blank_before or bullets:
            flush()
        elif paragraph and paragraph[-1].endswith(_SENTENCE_END):
            flush()  # one paragraph per line when the scrape kept no blank lines
        is_heading = (
            line.blank_before
            and (following is None or following.blank_before)
            and _word_count(text, MAX_HEADING_WORDS + 1) <= MAX_HEADING_WORDS
            and not text.endswith(_TERMINAL)
            and parts.first_paragraph
            and following is not None
        )
        if is_heading:
            parts.blocks.append(("h2", f"<h2>{escape(text, quote=False)}</h2>"))
        else:
            paragraph.append(text)
        last_plain = text
    flush()
    return parts


def _same_caption(first: _Caption, second: _Caption) -> bool:
    return first.text == second.text and (
        first.credit == second.credit or not first.credit or not second.credit
    )


def _figure(caption: _Caption) -> str:
    inner = escape(caption.text, quote=False)
    if caption.credit:
        credit = f"<small>({escape(caption.credit, quote=False)})</small>"
        inner = f"{inner} {credit}" if inner else credit
    return f"<figure><figcaption>{inner}</figcaption></figure>"


def _drop_inline_chrome(body: list[_Line]) -> list[_Line]:
    """Remove furniture inside the body: share labels, read-also links, font-size pickers."""
    kept: list[_Line] = []
    skip_next_link = False
    pending_blank = False
    index = 0
    while index < len(body):
        line = body[index]
        text = line.text
        key = _key(text)
        run = index
        while run < len(body) and _key(body[run].text) in _FONT_SIZES:
            run += 1
        if run - index >= 2:
            index = run
            pending_blank = True
            continue
        if key in CHROME_LABELS:
            skip_next_link = key in _READ_ALSO_LABELS
            pending_blank = True
            index += 1
            continue
        if _READ_ALSO.match(text):
            pending_blank = True
            index += 1
            continue
        if skip_next_link:
            skip_next_link = False
            if _word_count(
                text, MAX_HEADLINE_WORDS + 1
            ) <= MAX_HEADLINE_WORDS and not text.endswith((".", "!", "?")):
                pending_blank = True
                index += 1
                continue
        if pending_blank and not line.blank_before:
            line = _Line(line.number, text, True)
        pending_blank = False
        kept.append(line)
        index += 1
    return kept
