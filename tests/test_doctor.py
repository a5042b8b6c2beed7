"""`publisher doctor` against real aiosmtpd relays (with and without STARTTLS) and DNS answers."""

from __future__ import annotations

import asyncio
import base64
import os
from pathlib import Path

import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from publisher.cli.init import init_site
from publisher.db import create_sync_engine
from publisher.doctor import Check, Status, run_checks
from tests.clirunner import run_module
from tests.services import free_port
from tests.smtp_servers import (
    RecordingHandler,
    password_authenticator,
    self_signed_tls,
    smtp_server,
)

DOMAIN = "news.example.org"


def dkim_key(path: Path) -> str:
    """Write a fresh 2048-bit key; return its public key as DKIM's p= value."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


def make_site(tmp_path: Path, smtp_url: str, *, base_url: str = f"https://{DOMAIN}") -> Path:
    site = tmp_path / "site"
    init_site(site, title="Kabar", base_url=base_url)
    config = site / "publisher.toml"
    text = config.read_text()
    text = text.replace('smtp_url = "smtp://127.0.0.1:1025"', f'smtp_url = "{smtp_url}"')
    config.write_text(text)
    assert smtp_url in config.read_text()
    return config


def add_dkim(config: Path, key_file: Path) -> None:
    settings = f'dkim_domain = "{DOMAIN}"\ndkim_selector = "s1"\ndkim_key_file = "{key_file.name}"'
    text = config.read_text().replace("[mail]\n", f"[mail]\n{settings}\n", 1)
    config.write_text(text)


def by_name(checks: list[Check]) -> dict[str, list[Check]]:
    found: dict[str, list[Check]] = {}
    for check in checks:
        found.setdefault(check.name, []).append(check)
    return found


async def test_a_well_configured_site_passes(tmp_path: Path) -> None:
    context, cert = self_signed_tls(tmp_path)
    server = {
        "tls": context,
        "require_starttls": True,
        "auth_required": True,
        "authenticator": password_authenticator("news", "s3cret-password"),
    }
    async with smtp_server(RecordingHandler(), **server) as port:
        config = make_site(tmp_path, f"smtp://news:s3cret-password@127.0.0.1:{port}?cafile={cert}")
        public = dkim_key(config.parent / "dkim.key")
        add_dkim(config, config.parent / "dkim.key")
        config.chmod(0o600)
        (config.parent / "publisher.db").chmod(0o600)
        dns = {
            f"s1._domainkey.{DOMAIN}": [f"v=DKIM1; k=rsa; p={public[:100]} {public[100:]}"],
            DOMAIN: ["v=spf1 mx -all", "google-site-verification=x"],
            f"_dmarc.{DOMAIN}": ["v=DMARC1; p=quarantine"],
        }

        async def lookup(name: str) -> list[str] | None:
            return dns.get(name, [])

        checks = await run_checks(str(config), lookup=lookup)
    lines = "\n".join(check.line() for check in checks)
    assert all(check.status == Status.OK for check in checks), lines
    found = by_name(checks)
    assert "TLS in use" in found["relay"][0].detail
    assert "AUTH as news ok" in found["relay"][0].detail
    assert "matches dkim.key" in found["dkim"][0].detail
    assert len(found["permissions"]) == 3  # config, database, DKIM key


async def test_a_misconfigured_site_fails_with_one_line_per_problem(tmp_path: Path) -> None:
    context, _ = self_signed_tls(tmp_path)
    async with smtp_server(RecordingHandler(), tls=context) as port:
        # The relay offers STARTTLS but the URL refuses it; http base URL; open permissions.
        config = make_site(
            tmp_path,
            f"smtp://127.0.0.1:{port}?starttls=never",
            base_url=f"http://{DOMAIN}",
        )
        dkim_key(config.parent / "dkim.key")
        add_dkim(config, config.parent / "dkim.key")
        config.chmod(0o644)
        (config.parent / "dkim.key").chmod(0o644)
        engine = create_sync_engine(f"sqlite:///{config.parent / 'publisher.db'}")
        with engine.begin() as connection:
            connection.execute(sa.text("UPDATE alembic_version SET version_num = '0001_content'"))
        engine.dispose()
        other = dkim_key(tmp_path / "other.key")
        dns = {
            f"s1._domainkey.{DOMAIN}": [f"v=DKIM1; k=rsa; p={other}"],
            DOMAIN: ["v=spf1 +all"],
        }

        async def lookup(name: str) -> list[str] | None:
            return dns.get(name, [])

        checks = await run_checks(str(config), lookup=lookup)
    found = by_name(checks)
    failed = {check.name for check in checks if check.status == Status.FAIL}
    assert failed == {"permissions", "database", "base_url", "dkim", "spf"}, checks
    assert "readable by everyone" in found["permissions"][0].detail
    assert "chmod 600" in found["permissions"][0].detail
    assert "publisher db upgrade" in found["database"][0].detail
    assert "pending" in found["database"][0].detail
    assert found["relay"][0].status == Status.WARN
    assert "STARTTLS offered but not used" in found["relay"][0].detail
    assert "p=" in found["dkim"][0].detail  # the record to publish
    assert found["dmarc"][0].status == Status.WARN


async def test_unreachable_dns_prints_the_record_to_publish(tmp_path: Path) -> None:
    config = make_site(tmp_path, f"smtp://127.0.0.1:{free_port()}")
    public = dkim_key(config.parent / "dkim.key")
    add_dkim(config, config.parent / "dkim.key")

    async def unreachable(name: str) -> list[str] | None:
        return None

    checks = await run_checks(str(config), lookup=unreachable)
    found = by_name(checks)
    assert found["dkim"][0].status == Status.WARN
    assert f's1._domainkey.{DOMAIN}. IN TXT "v=DKIM1; k=rsa; p={public}"' in found["dkim"][0].detail
    assert found["relay"][0].status == Status.FAIL  # nothing listens there
    assert "cannot connect" in found["relay"][0].detail


def test_cli_exits_1_and_prints_one_line_per_check(tmp_path: Path) -> None:
    config = make_site(tmp_path, f"smtp://127.0.0.1:{free_port()}", base_url=f"http://{DOMAIN}")
    config.chmod(0o644)
    result = run_module("--config", config, "doctor", timeout=120)
    assert result.exit_code == 1, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("ok    config:")
    assert any(line.startswith("FAIL  base_url:") for line in lines)
    assert any(line.startswith("FAIL  relay:") for line in lines)
    assert lines[-1].endswith("problem(s) found")


def test_bad_configuration_is_one_failing_line(tmp_path: Path) -> None:
    config = tmp_path / "publisher.toml"
    config.write_text('[site]\nbase_url = "ftp://x"\n')
    checks = asyncio.run(run_checks(str(config)))
    assert [check.status for check in checks] == [Status.FAIL]
    assert "site.base_url" in checks[0].detail
    assert os.path.basename(config) in checks[0].detail


async def test_each_relay_is_checked(tmp_path: Path) -> None:
    async with smtp_server(RecordingHandler()) as port:
        config = make_site(tmp_path, f"smtp://127.0.0.1:{port}")
        dead = free_port()
        text = config.read_text().replace(
            "[digest]\n",
            f'[[mail.relays]]\nurl = "smtp://127.0.0.1:{port}"\n'
            f'[[mail.relays]]\nurl = "smtp://127.0.0.1:{dead}"\n\n[digest]\n',
            1,
        )
        config.write_text(text)

        async def lookup(name: str) -> list[str] | None:
            return None

        checks = await run_checks(str(config), lookup=lookup)
    relays = by_name(checks)["relay"]
    assert [check.status for check in relays] == [Status.OK, Status.FAIL]
    assert str(dead) in relays[1].detail


async def test_a_database_migrated_by_a_newer_release_is_a_warning(tmp_path: Path) -> None:
    config = make_site(tmp_path, f"smtp://127.0.0.1:{free_port()}")
    engine = create_sync_engine(f"sqlite:///{config.parent / 'publisher.db'}")
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE alembic_version SET version_num = '0999_newer'"))
    engine.dispose()

    async def lookup(name: str) -> list[str] | None:
        return None

    checks = await run_checks(str(config), lookup=lookup)
    (database,) = by_name(checks)["database"]
    assert database.status == Status.WARN
    assert "0999_newer" in database.detail
    assert "newer than this release" in database.detail
