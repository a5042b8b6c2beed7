"""`publisher init`: write a commented publisher.toml and create the database."""

from __future__ import annotations

import json
import os
import secrets
import tomllib
from pathlib import Path

import click

from publisher.cli.context import CliContext, console, pass_cli
from publisher.errors import UsageError

# Each command imports what its own work needs inside its function, so the command
# list, the help and the other commands load none of it (docs/development.md, "Start-up time").

CONFIG_TEMPLATE = """\
# Publisher configuration. Every setting is listed in docs/configuration.md.
# Any key can be overridden by an environment variable PUBLISHER_<SECTION>__<KEY>,
# for example PUBLISHER_MAIL__SMTP_URL=smtp://mail.example.org:587.

[site]
title = {title}
description = ""
# Absolute URL the site is served at; links in feeds and emails start with it.
base_url = {base_url}
# Default language of articles and emails: "id" (Indonesian) or "en" (English).
language = {language}
# Default time zone for readers without one, and for dates without an offset.
timezone = {timezone}
author = ""
# A folder whose email/ and web/ templates override the built-in ones.
# templates_dir = "templates"

[database]
# Relative to this file. For PostgreSQL: "postgresql://user:password@host/dbname".
url = "sqlite:///publisher.db"

[mail]
from = {mail_from}
reply_to = ""
# `publisher mailsink` listens here; point it at your MTA in production
# (smtp://user:pass@host:587 uses STARTTLS and sends the password only over TLS,
# smtps:// implicit TLS; ?auth=plain-insecure allows a password without TLS).
smtp_url = "smtp://127.0.0.1:1025"
connections = 4
rate_per_second = 0   # 0 = unlimited
rate_per_hour = 0     # 0 = unlimited
retry_initial = "60s"
retry_for = "24h"
# Postal address printed in every digest footer (required by anti-spam laws).
postal_address = ""
# dkim_domain = "example.org"
# dkim_selector = "publisher"
# dkim_key_file = "dkim.key"
# timeout = "30s"
# unsubscribe_mailto = "unsubscribe@example.org"
# Envelope sender: mail leaves from bounces+<signed token>@...; default: the from address.
# return_path = "bounces@example.org"
# Email a notice after someone unsubscribes (off: they asked for no more email):
# unsubscribe_notice = false
# Suppress an address after this many soft bounces within the window:
# soft_bounce_limit = 3
# soft_bounce_window = "30d"

[digest]
# Each reader's local time (their own time zone, else site.timezone).
send_time = "07:00"
max_articles = 10
weekly_day = "mon"

[web]
# Signs unsubscribe, confirmation and preference links. Keep it secret; changing it
# invalidates every link already sent.
secret_key = {secret_key}
feed_cache_seconds = 300
# websub_hub = "https://pubsubhubbub.appspot.com/"

[feeds]
items = 50
archive_size = 100

[fetch]
# Fetching pages and feeds from loopback or private addresses is refused unless allowed:
allow_private_addresses = false

# Prometheus metrics: a separate listener, and/or /metrics on the web app with a token.
[metrics]
# listen = "127.0.0.1:9108"
# token = "replace-with-a-long-random-string"

# Bounce and complaint webhooks from your mail provider (docs/operations.md):
[webhooks]
# ses_topics = ["arn:aws:sns:us-east-1:123456789012:publisher-bounces"]
# postmark_username = "postmark"
# postmark_password = "replace-with-a-long-random-string"
# mailgun_signing_key = "key-from-mailgun-webhooks-page"
# sendgrid_public_key = "from SendGrid's Signed Event Webhook page"

[log]
format = "text"   # or "json": one JSON object per line

# Feeds to follow and import on a schedule:
# [[sources]]
# url = "https://example.org/feed.xml"
# tags = ["partner"]
"""


#: The first article `publisher init` leaves in posts/, in the site's language (English
#: for any language without its own), so `publisher articles add posts/` has one to add.
WELCOME_POSTS = {
    "id": """\
---
title: "Selamat datang di {title}"
tags:
  - pengumuman
summary: "Contoh artikel pertama: ubah atau hapus berkas ini, lalu tulis artikel Anda."
---
Ini artikel pertama situs Anda, dibuat oleh `publisher init`. Setiap berkas Markdown
di folder `posts/` menjadi satu artikel: bagian di antara dua baris `---` di atas
memuat judul, tag dan ringkasan, dan sisanya adalah isi artikel.

Ubah atau hapus berkas ini, tulis artikel Anda sendiri, lalu jalankan
`publisher articles add posts/`. Menambahkan berkas yang sama lagi tidak mengubah apa pun;
berkas yang diubah memperbarui artikelnya.
""",
    "en": """\
---
title: "Welcome to {title}"
tags:
  - announcements
summary: "An example first article: edit or delete this file, then write your own."
---
This is your site's first article, written by `publisher init`. Each Markdown file in
the `posts/` folder becomes one article: the part between the two `---` lines above
holds the title, tags and summary, and the rest is the article's body.

Edit or delete this file, write your own articles, then run
`publisher articles add posts/`. Adding the same file again changes nothing; a changed
file updates its article.
""",
}


def write_welcome_post(directory: Path, *, title: str, language: str) -> Path | None:
    """Create posts/ with an example first article; None when posts/ exists already."""
    posts = directory / "posts"
    try:
        posts.mkdir()
    except FileExistsError:
        return None
    except OSError as exc:
        raise UsageError(f"{posts}: cannot create: {exc.strerror}") from exc
    template = WELCOME_POSTS.get(language.split("-")[0].lower(), WELCOME_POSTS["en"])
    # The title goes into a YAML double-quoted string: JSON escaping is valid there.
    quoted = json.dumps(title, ensure_ascii=False)[1:-1]
    path = posts / "welcome.md"
    path.write_text(template.replace("{title}", quoted), encoding="utf-8")
    return path


def toml_string(value: str) -> str:
    """Quote a value as a TOML basic string."""
    return json.dumps(value, ensure_ascii=False)


def write_config(
    directory: Path, *, title: str, base_url: str, language: str, timezone: str
) -> Path:
    """Write publisher.toml into ``directory`` (refusing to overwrite) and return its path."""
    from publisher.config import (
        DEFAULT_CONFIG,
        settings_from_mapping,
        validate_timezone,
    )
    from publisher.render.i18n import available_languages, normalize_language

    directory.mkdir(parents=True, exist_ok=True)
    path = directory / DEFAULT_CONFIG
    if path.exists():
        raise UsageError(f"{path}: already exists; remove it or choose another folder")
    primary = normalize_language(language)
    if primary and primary not in available_languages():
        choices = ", ".join(available_languages())
        raise UsageError(
            f"--language: no built-in translation for {language!r} (available: {choices}); "
            "for another language add catalogs under site.templates_dir/locale"
        )
    try:
        validate_timezone(timezone)
    except ValueError as exc:
        raise UsageError(f"--timezone: {exc}") from None
    host = base_url.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0] or "localhost"
    if "." not in host:
        host = f"{host}.localdomain"
    text = CONFIG_TEMPLATE.format(
        title=toml_string(title),
        base_url=toml_string(base_url),
        language=toml_string(language),
        timezone=toml_string(timezone),
        mail_from=toml_string(f"{title} <newsletter@{host}>"),
        secret_key=toml_string(secrets.token_urlsafe(32)),
    )
    settings_from_mapping(tomllib.loads(text), path, text)  # reject bad flags before writing
    write_private(path, text.encode("utf-8"))
    return path


def write_private(path: Path, data: bytes) -> None:
    """Create ``path`` readable by its owner only (it holds secret_key and SMTP passwords)."""
    # Created 0600 from the start: a chmod after writing would leave a window at the umask.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise UsageError(f"{path}: already exists; remove it or choose another folder") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot create: {exc.strerror}") from exc
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def init_site(
    directory: Path,
    *,
    title: str = "Publisher",
    base_url: str = "http://127.0.0.1:8000",
    language: str = "id",
    timezone: str = "Asia/Jakarta",
) -> Path:
    """Create a site folder: the config file and a migrated database."""
    from publisher import db
    from publisher.config import load_settings

    path = write_config(
        directory, title=title, base_url=base_url, language=language, timezone=timezone
    )
    settings = load_settings(path)
    db.upgrade(settings.database.url)
    return path


@click.command("init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=".")
@click.option("--title", default="Publisher", show_default=True, help="Site title.")
@click.option("--base-url", default="http://127.0.0.1:8000", show_default=True)
@click.option("--language", default="id", show_default=True, help="Default language.")
@click.option("--timezone", default="Asia/Jakarta", show_default=True, help="IANA time zone.")
@pass_cli
def init(
    cli: CliContext, directory: Path, title: str, base_url: str, language: str, timezone: str
) -> None:
    """Create publisher.toml, the database and posts/ with a first article in DIRECTORY."""
    from publisher.config import load_settings

    path = init_site(
        directory, title=title, base_url=base_url, language=language, timezone=timezone
    )
    console.print(f"wrote {path}", markup=False)
    console.print(f"created database {load_settings(path).database.url}", markup=False)
    welcome = write_welcome_post(directory, title=title, language=language)
    if welcome is not None:
        console.print(
            f"wrote {welcome}: an example article to edit or delete; "
            "`publisher articles add posts/` adds what is in posts/",
            markup=False,
        )


COMMANDS = [init]
