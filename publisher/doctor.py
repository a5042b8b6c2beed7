"""Preflight checks for `publisher doctor`: one result per check, nothing changed."""

from __future__ import annotations

import asyncio
import re
import stat
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import parseaddr
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit

from publisher import db, dnslookup
from publisher.config import Settings, load_settings, resolve_config_path
from publisher.errors import PublisherError
from publisher.keys import load_dkim_key

#: Seconds each network check (SMTP session, DNS query) may take.
NETWORK_TIMEOUT = 10.0
_LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1"}


class Status(StrEnum):
    """How a check came out: only FAIL makes `doctor` exit 1."""

    OK = "ok"
    WARN = "warn"
    FAIL = "FAIL"


@dataclass(frozen=True)
class Check:
    """One line of the report."""

    status: Status
    name: str
    detail: str

    def line(self) -> str:
        """Return the check as the one line `doctor` prints."""
        return f"{self.status.value:4}  {self.name}: {self.detail}"


Lookup = Callable[[str], Awaitable[list[str] | None]]


async def run_checks(config_path: str | None, *, lookup: Lookup | None = None) -> list[Check]:
    """Run every check that applies to the configuration; return them in order."""
    lookup = lookup or dnslookup.txt_records
    path = resolve_config_path(config_path)
    try:
        settings = load_settings(config_path)
    except PublisherError as exc:
        return [Check(Status.FAIL, "config", str(exc))]
    checks = [Check(Status.OK, "config", f"{path} is valid")]
    checks += _permissions(settings, path)
    checks.append(await asyncio.to_thread(_database, settings))
    checks.append(_base_url(settings))
    checks.append(_secret_key(settings))
    checks += await _relays(settings)
    domain = _from_domain(settings)
    checks.append(await _dkim(settings, lookup))
    if domain:
        checks.append(await _spf(domain, lookup))
        checks.append(await _dmarc(domain, lookup))
    return checks


def _permissions(settings: Settings, config: Path) -> list[Check]:
    files = [("config file", config)]
    database = db.sqlite_path(settings.database.url)
    if database is not None:
        files.append(("database file", database))
    if settings.mail.dkim_key_file is not None:
        files.append(("DKIM key", settings.mail.dkim_key_file))
    checks = []
    for label, file in files:
        try:
            mode = file.stat().st_mode
        except FileNotFoundError:
            if label != "database file":  # a missing database is the next check's business
                checks.append(Check(Status.FAIL, "permissions", f"{label} {file} does not exist"))
            continue
        if mode & stat.S_IROTH:
            checks.append(
                Check(
                    Status.FAIL,
                    "permissions",
                    f"{label} {file} is readable by everyone "
                    f"(mode {stat.S_IMODE(mode):o}; run chmod 600 {file})",
                )
            )
        elif mode & stat.S_IWGRP:
            checks.append(
                Check(Status.WARN, "permissions", f"{label} {file} is writable by its group")
            )
        else:
            checks.append(
                Check(
                    Status.OK,
                    "permissions",
                    f"{label} {file} is private (mode {stat.S_IMODE(mode):o})",
                )
            )
    return checks


def _database(settings: Settings) -> Check:
    url = settings.database.url
    try:
        schema = db.schema_status(url)
    except PublisherError as exc:
        return Check(Status.FAIL, "database", str(exc))
    if schema.state is db.SchemaState.CURRENT:
        return Check(Status.OK, "database", f"reachable, migrations current ({schema.head})")
    if schema.state is db.SchemaState.AHEAD:
        return Check(
            Status.WARN,
            "database",
            f"reachable, at {schema.current}, newer than this release ({schema.head}): "
            "fine while a rolling upgrade is under way; install the new release here",
        )
    return Check(
        Status.FAIL,
        "database",
        f"reachable but at {schema.current or 'no schema'}, code needs {schema.head}: "
        f"{len(schema.pending)} pending (run `publisher db upgrade`)",
    )


def _base_url(settings: Settings) -> Check:
    url = settings.site.base_url
    host = urlsplit(url).hostname or ""
    if url.startswith("https://"):
        return Check(Status.OK, "base_url", f"{url} uses https")
    if host in _LOCAL_HOSTS:
        return Check(Status.WARN, "base_url", f"{url} is local: fine for testing only")
    return Check(
        Status.FAIL,
        "base_url",
        f"{url} is not https: readers' links and one-click unsubscribes travel in clear "
        "(set site.base_url to https://…)",
    )


def _secret_key(settings: Settings) -> Check:
    if len(settings.web.secret_key) >= 16:
        return Check(Status.OK, "secret_key", "set")
    return Check(
        Status.FAIL, "secret_key", "web.secret_key is missing or shorter than 16 characters"
    )


async def _relays(settings: Settings) -> list[Check]:
    urls = [relay.url for relay in settings.mail.relays] or [settings.mail.smtp_url]
    return [await _relay(url, settings) for url in urls]


async def _relay(url: str, settings: Settings) -> Check:
    from publisher.delivery.smtp import ServerUnavailable, parse_smtp_url, probe

    try:
        target = parse_smtp_url(url)
    except PublisherError as exc:
        return Check(Status.FAIL, "relay", str(exc))
    timeout = min(NETWORK_TIMEOUT, settings.mail.timeout.total_seconds())
    try:
        found = await asyncio.wait_for(probe(target, timeout), NETWORK_TIMEOUT + 5)
    except (ServerUnavailable, TimeoutError) as exc:
        detail = str(exc) or f"{target.describe()}: no answer within {NETWORK_TIMEOUT:g} s"
        return Check(Status.FAIL, "relay", detail)
    parts = ["EHLO ok"]
    status = Status.OK
    if found.tls:
        parts.append("TLS in use")
    elif found.starttls_offered:
        parts.append("STARTTLS offered but not used")
        status = Status.WARN
    elif target.host in _LOCAL_HOSTS:
        parts.append("no TLS (a local relay: fine)")
    else:
        parts.append("no TLS: mail and any password cross the network in clear")
        status = Status.FAIL
    if target.username:
        parts.append(f"AUTH as {target.username} ok")
    return Check(status, "relay", f"{found.where}: " + ", ".join(parts))


def _from_domain(settings: Settings) -> str:
    address = parseaddr(settings.mail.from_)[1]
    return address.rpartition("@")[2].lower()


async def _dkim(settings: Settings, lookup: Lookup) -> Check:
    mail = settings.mail
    if not (mail.dkim_domain and mail.dkim_selector and mail.dkim_key_file):
        return Check(
            Status.WARN,
            "dkim",
            "not configured: digests go out unsigned unless your relay signs them "
            "(set mail.dkim_domain, mail.dkim_selector, mail.dkim_key_file)",
        )
    try:
        key = load_dkim_key(mail.dkim_key_file.read_bytes())
    except OSError as exc:
        return Check(Status.FAIL, "dkim", f"{mail.dkim_key_file}: cannot read: {exc.strerror}")
    except PublisherError as exc:
        return Check(Status.FAIL, "dkim", f"{mail.dkim_key_file}: {exc}")
    public = key.public_key_base64()
    name = f"{mail.dkim_selector}._domainkey.{mail.dkim_domain}"
    record = f'{name}. IN TXT "v=DKIM1; k=rsa; p={public}"'
    found = await lookup(name)
    if found is None:
        return Check(
            Status.WARN, "dkim", f"DNS unreachable; publish this record if not done: {record}"
        )
    published = [_tag(text, "p") for text in found if "p=" in text]
    if not published:
        return Check(Status.FAIL, "dkim", f"no DKIM record at {name}; publish: {record}")
    if public in published:
        return Check(Status.OK, "dkim", f"{name} matches {mail.dkim_key_file.name}")
    return Check(
        Status.FAIL,
        "dkim",
        f"{name} publishes a different key than {mail.dkim_key_file}; publish: {record}",
    )


def _tag(record: str, tag: str) -> str:
    for part in record.split(";"):
        name, _, value = part.strip().partition("=")
        if name.strip() == tag:
            return re.sub(r"\s+", "", value)
    return ""


async def _spf(domain: str, lookup: Lookup) -> Check:
    found = await lookup(domain)
    if found is None:
        return Check(Status.WARN, "spf", f"DNS unreachable; cannot check {domain}")
    records = [text for text in found if text.lower().startswith("v=spf1")]
    if len(records) > 1:
        return Check(Status.FAIL, "spf", f"{domain} has {len(records)} SPF records (RFC 7208: one)")
    if not records:
        return Check(
            Status.WARN,
            "spf",
            f'{domain} has no SPF record; publish e.g. "v=spf1 mx include:<your relay> ~all"',
        )
    if records[0].rstrip().endswith("+all"):
        return Check(Status.FAIL, "spf", f"{domain}: SPF ends in +all, allowing anyone")
    return Check(Status.OK, "spf", f"{domain}: {records[0]}")


async def _dmarc(domain: str, lookup: Lookup) -> Check:
    name = f"_dmarc.{domain}"
    found = await lookup(name)
    if found is None:
        return Check(Status.WARN, "dmarc", f"DNS unreachable; cannot check {name}")
    records = [text for text in found if text.upper().startswith("V=DMARC1")]
    if not records:
        return Check(
            Status.WARN,
            "dmarc",
            f'no DMARC record at {name}; publish e.g. "v=DMARC1; p=none; rua=mailto:dmarc@{domain}"'
            " and tighten to p=quarantine once reports are clean",
        )
    return Check(Status.OK, "dmarc", f"{name}: {records[0]}")
