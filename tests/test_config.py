"""Configuration: loading, one-line errors, env overrides, paths, `init`, `db upgrade`, --help."""

from __future__ import annotations

import re
import sqlite3
import time as time_module
import tomllib
from datetime import time, timedelta
from pathlib import Path

import pytest

from publisher import db
from publisher.cli.init import CONFIG_TEMPLATE, init_site
from publisher.config import (
    DEFAULT_CONFIG,
    MailSettings,
    RelaySettings,
    load_settings,
    parse_duration,
    setting_names,
)
from publisher.errors import ConfigError, UsageError
from tests.clirunner import invoke, run_module


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the caller's PUBLISHER_* variables out of these tests."""
    import os

    for name in list(os.environ):
        if name.startswith("PUBLISHER_") and name != "PUBLISHER_TEST_POSTGRES_URL":
            monkeypatch.delenv(name)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


BAD_CONFIGS = [
    pytest.param(
        '[site]\ntitle = "T"\ncolour = "red"\n', 3, "site.colour: unknown setting", id="unknown-key"
    ),
    pytest.param(
        '[site]\ntitle = "T"\n\n[sitee]\ntitle = "x"\n',
        4,
        "sitee: unknown setting",
        id="unknown-section",
    ),
    pytest.param('title = "T"\n', 1, "title: unknown setting", id="top-level-key"),
    pytest.param(
        '[mail]\nconnections = "many"\n',
        2,
        r"mail\.connections: expected an integer, got 'many'",
        id="wrong-type",
    ),
    pytest.param(
        "[mail]\nconnections = 0\n",
        2,
        r"mail\.connections: must be >= 1, got 0",
        id="out-of-range",
    ),
    pytest.param(
        '[site]\n# where we are\ntimezone = "Mars/Olympus"\n',
        3,
        r"site\.timezone: unknown time zone: 'Mars/Olympus'.*",
        id="bad-timezone",
    ),
    pytest.param(
        '[mail]\nretry_initial = "60s"\nretry_for = "soon"\n',
        3,
        r"mail\.retry_for: not a duration: 'soon' \(use e\.g\. 90s, 15m, 24h, 7d\)",
        id="bad-duration",
    ),
    pytest.param(
        '[site]\nbase_url = "news.example.org"\n',
        2,
        r"site\.base_url: must be an absolute http\(s\) URL, got 'news\.example\.org'",
        id="bad-base-url",
    ),
    pytest.param(
        '[site]\nbase_url = "ftp://news.example.org"\n',
        2,
        r"site\.base_url: must be an absolute http\(s\) URL.*",
        id="non-http-base-url",
    ),
    pytest.param(
        '[digest]\nsend_time = "25:00"\n',
        2,
        r"digest\.send_time: not a time of day: '25:00'.*",
        id="bad-send-time",
    ),
    pytest.param(
        '[digest]\nweekly_day = "monday"\n',
        2,
        r"digest\.weekly_day: must be one of mon, tue, wed, thu, fri, sat, sun, got 'monday'",
        id="bad-weekday",
    ),
    pytest.param(
        '[database]\nurl = "mysql://localhost/db"\n',
        2,
        r"database\.url: must be a sqlite:/// or postgresql:// URL.*",
        id="bad-database-url",
    ),
    pytest.param(
        '[mail]\nsmtp_url = "mail.example.org:25"\n',
        2,
        r"mail\.smtp_url: must start with smtp:// or smtps://.*",
        id="bad-smtp-url",
    ),
    pytest.param(
        '[[sources]]\nurl = "https://a.example/feed.xml"\ntags = "partner"\n',
        3,
        r"sources\.tags: expected a list, got 'partner'",
        id="sources-tags-not-list",
    ),
    pytest.param(
        '[site]\ntitle = "T"\n\n[[sources]]\ntags = ["x"]\n',
        4,
        r"sources\.url: required, but not set",
        id="sources-missing-url",
    ),
    pytest.param(
        '[[sources]]\nurl = "https://a.example/"\n\n[[sources]]\nurl = "https://b.example/"\n'
        'tags = "x"\n',
        6,
        r"sources\.tags: expected a list, got 'x'",
        id="second-source",
    ),
    pytest.param(
        '[[sources]]\nurl = "https://a.example/"\n[[sources]]\ntags = []\n[site]\ntitle = "T"\n',
        3,
        r"sources\.url: required, but not set",
        id="second-source-missing-url",
    ),
    pytest.param(
        '[site]\ntitle = "unterminated\n',
        2,
        r"invalid TOML: .*",
        id="toml-syntax",
    ),
]


@pytest.mark.parametrize(("text", "line", "reason"), BAD_CONFIGS)
def test_bad_config_is_one_line_naming_file_line_and_key(
    text: str, line: int, reason: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write(tmp_path / "site" / DEFAULT_CONFIG, text)
    result = invoke(capsys, "--config", config, "articles", "list")
    assert result.exit_code == 2
    assert len(result.error_lines) == 1, result.stderr
    prefix = f"error: {config}:{line}: "
    assert result.error_lines[0].startswith(prefix), result.stderr
    assert re.fullmatch(reason, result.error_lines[0].removeprefix(prefix)), result.stderr
    assert result.stdout == ""


def test_missing_file_in_a_subprocess_has_no_traceback(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / DEFAULT_CONFIG
    result = run_module("--config", missing, "articles", "list")
    assert result.exit_code == 2
    assert result.error_lines == [
        f"error: {missing}: no such configuration file (run `publisher init` to create one)"
    ]


def test_bad_value_in_a_subprocess_has_no_traceback_unless_debug(tmp_path: Path) -> None:
    config = write(tmp_path / DEFAULT_CONFIG, '[mail]\nretry_for = "soon"\n')
    plain = run_module("--config", config, "db", "upgrade")
    assert plain.exit_code == 2
    assert len(plain.error_lines) == 1
    assert plain.error_lines[0].startswith(f"error: {config}:2: mail.retry_for: not a duration")
    debug = run_module("--debug", "--config", config, "db", "upgrade")
    assert debug.exit_code != 0
    assert "Traceback" in debug.stderr
    assert "ConfigError" in debug.stderr


def test_default_config_is_found_in_the_working_folder_and_via_env(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = invoke(capsys, "articles", "list")
    assert result.exit_code == 2
    assert result.error_lines == [
        f"error: {tmp_path / DEFAULT_CONFIG}: no such configuration file "
        "(run `publisher init` to create one)"
    ]
    other = write(tmp_path / "elsewhere" / "site.toml", "[site\n")
    monkeypatch.setenv("PUBLISHER_CONFIG", str(other))
    result = invoke(capsys, "articles", "list")
    assert result.error_lines[0].startswith(f"error: {other}:1: invalid TOML")


def test_non_utf8_config(tmp_path: Path) -> None:
    config = tmp_path / DEFAULT_CONFIG
    config.write_bytes(b'[site]\ntitle = "Caf\xe9"\n')
    with pytest.raises(ConfigError, match=r"not UTF-8 text"):
        load_settings(config)


def test_env_overrides_file_and_bad_env_names_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write(
        tmp_path / DEFAULT_CONFIG,
        '[mail]\nsmtp_url = "smtp://127.0.0.1:1025"\nconnections = 2\n[site]\ntitle = "File"\n',
    )
    monkeypatch.setenv("PUBLISHER_MAIL__SMTP_URL", "smtps://user:pw@mail.example.org:465")
    monkeypatch.setenv("PUBLISHER_DIGEST__SEND_TIME", "06:30")
    monkeypatch.setenv("PUBLISHER_WEB__SECRET_KEY", "from-env")
    settings = load_settings(config)
    assert settings.mail.smtp_url == "smtps://user:pw@mail.example.org:465"
    assert settings.mail.connections == 2  # the rest of the section still comes from the file
    assert settings.site.title == "File"
    assert settings.digest.send_time == time(6, 30)
    assert settings.web.secret_key == "from-env"

    monkeypatch.setenv("PUBLISHER_MAIL__SMTP_URL", "mail.example.org")
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert str(caught.value).startswith(
        "environment variable PUBLISHER_MAIL__SMTP_URL: must start with smtp://"
    )
    monkeypatch.delenv("PUBLISHER_MAIL__SMTP_URL")
    monkeypatch.setenv("PUBLISHER_SOURCES", "[{not json")
    with pytest.raises(
        ConfigError, match=r"^environment variable PUBLISHER_SOURCES: not valid JSON$"
    ):
        load_settings(config)


ENV_FILE = '[mail]\nsmtp_url = "smtp://file:25"\nconnections = 2\n[site]\ntitle = "File"\n'


def test_env_sections_lists_and_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Names in any case; a section or list as JSON; a key's variable refines its section's."""
    config = write(tmp_path / DEFAULT_CONFIG, ENV_FILE)
    monkeypatch.setenv("publisher_site__language", "en")
    monkeypatch.setenv("PUBLISHER_MAIL", '{"timeout": "5s", "from": "Kabar <k@example.org>"}')
    monkeypatch.setenv("PUBLISHER_MAIL__TIMEOUT", "7s")
    monkeypatch.setenv(
        "Publisher_Mail__Relays", '[{"url": "smtp://relay.example.org", "weight": 2}]'
    )
    monkeypatch.setenv("PUBLISHER_WEBHOOKS__SES_TOPICS", '["arn:aws:sns:us-east-1:123456789012:b"]')
    monkeypatch.setenv("PUBLISHER_SOURCES", '[{"url": "https://e.org/f.xml", "tags": ["p"]}]')
    monkeypatch.setenv("PUBLISHER_CONFIG_PATH", "/elsewhere")  # not a setting: ignored
    monkeypatch.setenv("PUBLISHER_SITE_TITLE", "one underscore")  # not a setting: ignored
    settings = load_settings(config)
    assert settings.site.language == "en"
    assert settings.site.title == "File"
    assert settings.mail.timeout == timedelta(seconds=7)  # the key's variable wins
    assert settings.mail.from_ == "Kabar <k@example.org>"
    assert settings.mail.smtp_url == "smtp://file:25"  # the rest of [mail] is the file's
    assert settings.mail.connections == 2
    assert [(r.url, r.weight) for r in settings.mail.relays] == [("smtp://relay.example.org", 2)]
    assert settings.webhooks.ses_topics == ["arn:aws:sns:us-east-1:123456789012:b"]
    assert [(s.url, s.tags) for s in settings.sources] == [("https://e.org/f.xml", ["p"])]
    assert settings.config_path == config


#: How every error about one environment variable starts.
VAR = "environment variable "
BAD_ENV = [
    pytest.param(
        {"PUBLISHER_MAIL": "not json"},
        VAR + "PUBLISHER_MAIL: not valid JSON",
        id="section",
    ),
    pytest.param(
        {"PUBLISHER_MAIL": ""},
        VAR + "PUBLISHER_MAIL: not valid JSON",
        id="empty-section",
    ),
    pytest.param(
        {"PUBLISHER_MAIL__RELAYS": "smtp://a"},
        VAR + "PUBLISHER_MAIL__RELAYS: not valid JSON",
        id="list-key",
    ),
    pytest.param(
        {"PUBLISHER_MAIL": '{"timeout": "soon"}'},
        VAR + "PUBLISHER_MAIL: mail.timeout: not a duration: 'soon' (use e.g. 90s, 15m, 24h, 7d)",
        id="inside-section-json",
    ),
    pytest.param(
        {"PUBLISHER_SOURCES": '[{"url": "x", "nope": 1}]'},
        VAR + "PUBLISHER_SOURCES: sources.nope: unknown setting",
        id="inside-list-json",
    ),
    pytest.param(
        {"PUBLISHER_MAIL__RELAYS": '[{"url": "ftp://a"}]'},
        VAR + "PUBLISHER_MAIL__RELAYS: mail.relays.url: must start with smtp:// or smtps://, "
        "got 'ftp://a'",
        id="inside-key-json",
    ),
    pytest.param(
        {"PUBLISHER_MAIL": "[1]"},
        VAR + "PUBLISHER_MAIL: expected a table, got a list",
        id="section-not-table",
    ),
    pytest.param(
        {"PUBLISHER_SOURCES": "null"},
        VAR + "PUBLISHER_SOURCES: expected a list, got null",
        id="null",
    ),
    pytest.param(
        {"PUBLISHER_MAIL__NOPE": "1"},
        VAR + "PUBLISHER_MAIL__NOPE: unknown setting",
        id="key",
    ),
    pytest.param(
        {"PUBLISHER_MAIL__FROM_": "x"},
        VAR + "PUBLISHER_MAIL__FROM_: unknown setting",
        id="not-alias",
    ),
    pytest.param(
        {"PUBLISHER_MAIL__RELAYS__0__URL": "smtp://a"},
        VAR + "PUBLISHER_MAIL__RELAYS__0__URL: unknown setting",
        id="too-deep-name",
    ),
    pytest.param(
        {"PUBLISHER_SOURCES__URL": "x"},
        VAR + "PUBLISHER_SOURCES__URL: unknown setting",
        id="key-of-list",
    ),
    pytest.param(
        {"PUBLISHER_MAIL__": "x"},
        VAR + "PUBLISHER_MAIL__: unknown setting",
        id="empty-key",
    ),
    pytest.param(
        {"PUBLISHER_MAIL__CONNECTIONS": "999"},
        VAR + "PUBLISHER_MAIL__CONNECTIONS: must be <= 64, got 999",
        id="range",
    ),
    pytest.param(
        {"publisher_log__level": "loud"},
        VAR + "publisher_log__level: must be one of debug, info, warning, error, got 'loud'",
        id="lowercase-name",
    ),
    pytest.param(
        {"PUBLISHER_MAIL__SMTP_URL": "smtp://a", "publisher_mail__smtp_url": "smtp://b"},
        "environment variables PUBLISHER_MAIL__SMTP_URL and publisher_mail__smtp_url "
        "set the same setting",
        id="two-spellings",
    ),
    pytest.param(
        {"PUBLISHER_MAIL": "[1]", "PUBLISHER_MAIL__TIMEOUT": "5s"},
        VAR + "PUBLISHER_MAIL__TIMEOUT: PUBLISHER_MAIL is not a table",
        id="key-under-list",
    ),
    pytest.param(
        {"PUBLISHER_SOURCES": "[" * 100_000},
        VAR + "PUBLISHER_SOURCES: longer than 65536 characters",
        id="huge",
    ),
    pytest.param(
        {"PUBLISHER_SOURCES": "[" * 20_000 + "]" * 20_000},
        VAR + "PUBLISHER_SOURCES: JSON nested too deeply",
        id="recursion",
    ),
    pytest.param(
        {"PUBLISHER_SOURCES": "[" * 17 + "]" * 17},
        VAR + "PUBLISHER_SOURCES: JSON nested deeper than 16 levels",
        id="deep",
    ),
]


@pytest.mark.parametrize(("variables", "message"), BAD_ENV)
def test_bad_env_is_one_line_naming_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], message: str
) -> None:
    config = write(tmp_path / DEFAULT_CONFIG, ENV_FILE)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert str(caught.value) == message


#: Wrong shapes and types where [[sources]] and [[mail.relays]] are read: (text, line, error).
HOSTILE_LISTS = [
    pytest.param(
        'sources = {url = "https://a.example/"}\n',
        1,
        "sources: expected a list, got a table",
        id="table-for-sources",
    ),
    pytest.param(
        '[mail]\nrelays = {url = "smtp://a"}\n',
        2,
        "mail.relays: expected a list, got a table",
        id="table-for-relays",
    ),
    pytest.param(
        '[mail]\nrelays = ["smtp://a"]\n',
        2,
        "mail.relays: expected a table, got 'smtp://a'",
        id="string-for-relay",
    ),
    pytest.param(
        '[mail]\nrelays = [{url = "http://a"}]\n',
        2,
        "mail.relays.url: must start with smtp:// or smtps://, got 'http://a'",
        id="inline-relay",
    ),
    pytest.param(
        '[[sources]]\nurl = ["https://a.example/"]\n',
        2,
        "sources.url: expected a string, got a list",
        id="list-for-url",
    ),
    pytest.param(
        '[[sources]]\nurl = "https://a.example/"\ntags = ["a", 1]\n',
        3,
        "sources.tags: expected a string, got 1",
        id="number-in-tags",
    ),
    pytest.param(
        '[[sources]]\nurl = "https://a.example/"\ntags = [[[[["deep"]]]]]\n',
        3,
        "sources.tags: expected a string, got a list",
        id="nested-tags",
    ),
    pytest.param(
        '[[sources]]\nurl = "https://a.example/"\n[sources.extra]\nx = 1\n',
        3,
        "sources.extra: unknown setting",
        id="sub-table-in-source",
    ),
    pytest.param(
        '[[mail.relays]]\nurl = "smtp://a"\n[[mail.relays]]\nurl = "smtp://b"\nweight = true\n',
        5,
        "mail.relays.weight: expected an integer, got true",
        id="bool-for-weight",
    ),
    pytest.param(
        '[[mail.relays]]\nurl = {host = "a"}\n',
        2,
        "mail.relays.url: expected a string, got a table",
        id="table-for-relay-url",
    ),
    pytest.param(
        '[[mail.relays]]\nurl = "smtp://a"\nrate_per_second = nan\n',
        3,
        "mail.relays.rate_per_second: expected a number, got nan",
        id="nan-rate",
    ),
    pytest.param(
        "[mail]\nconnections = true\n",
        2,
        "mail.connections: expected an integer, got true",
        id="bool",
    ),
    pytest.param(
        "[mail]\nconnections = 2.5\n",
        2,
        "mail.connections: expected an integer, got 2.5",
        id="frac",
    ),
    pytest.param(
        "[mail]\nunsubscribe_notice = 1\n",
        2,
        "mail.unsubscribe_notice: expected true or false, got 1",
        id="number-for-bool",
    ),
    pytest.param(
        "[mail]\nrate_per_second = inf\n",
        2,
        "mail.rate_per_second: expected a number, got inf",
        id="infinite",
    ),
    pytest.param(
        '[mail]\ntimeout = "99999999999999d"\n',
        2,
        "mail.timeout: too long a duration: '99999999999999d'",
        id="huge-duration",
    ),
    pytest.param(
        '[mail]\nconnections = "' + "9" * 100_000 + '"\n',
        2,
        "mail.connections: expected an integer, got '" + "9" * 76 + "...",
        id="huge-string",
    ),
    pytest.param(
        '[site]\ntimezone = "' + "a" * 100_000 + '"\n',
        2,
        "site.timezone: unknown time zone: '"
        + "a" * 76
        + "... (use an IANA name like Asia/Jakarta)",
        id="huge-time-zone",
    ),
    pytest.param(
        "a = " + "[" * 100_000 + "]" * 100_000 + "\n",
        None,
        "invalid TOML: nested too deeply",
        id="deep-arrays",
    ),
]


@pytest.mark.parametrize(("text", "line", "message"), HOSTILE_LISTS)
def test_hostile_shapes_are_one_line_errors(
    text: str, line: int | None, message: str, tmp_path: Path
) -> None:
    config = write(tmp_path / DEFAULT_CONFIG, text)
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    where = f"{config}:{line}" if line else f"{config}"
    assert str(caught.value) == f"{where}: {message}"


def test_ten_thousand_sources_are_each_checked(tmp_path: Path) -> None:
    entries = [
        f'[[sources]]\nurl = "https://s{n}.example/feed.xml"\ntags = ["t{n}"]\n'
        for n in range(10_000)
    ]
    config = write(tmp_path / DEFAULT_CONFIG, "".join(entries))
    started = time_module.perf_counter()
    settings = load_settings(config)
    assert time_module.perf_counter() - started < 10  # ~0.1 s here; generous for CI
    assert len(settings.sources) == 10_000
    assert settings.sources[9_999].tags == ["t9999"]
    # The last entry's tag is a number: its own line is named, not the first entry's.
    entries[-1] = entries[-1].replace('["t9999"]', "[9999]")
    write(config, "".join(entries))
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert str(caught.value) == f"{config}:30000: sources.tags: expected a string, got 9999"


def test_env_strings_read_as_numbers_and_booleans(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every variable is a string: numbers, booleans and paths are read from it."""
    config = write(tmp_path / DEFAULT_CONFIG, '[site]\ntemplates_dir = "mine"\n')
    monkeypatch.setenv("PUBLISHER_MAIL__CONNECTIONS", " 5 ")
    monkeypatch.setenv("PUBLISHER_MAIL__RATE_PER_SECOND", "2.5")
    monkeypatch.setenv("PUBLISHER_FETCH__ALLOW_PRIVATE_ADDRESSES", "1")
    monkeypatch.setenv("PUBLISHER_SITE__TEMPLATES_DIR", "")  # empty: unset
    settings = load_settings(config)
    assert settings.mail.connections == 5
    assert settings.mail.rate_per_second == 2.5
    assert settings.fetch.allow_private_addresses is True
    assert settings.site.templates_dir is None
    for spelled, meant in [("yes", True), ("No", False), ("TRUE", True), ("off", False)]:
        monkeypatch.setenv("PUBLISHER_MAIL__UNSUBSCRIBE_NOTICE", spelled)
        assert load_settings(config).mail.unsubscribe_notice is meant, spelled
    for name, value, message in [
        ("PUBLISHER_MAIL__UNSUBSCRIBE_NOTICE", "maybe", "expected true or false, got 'maybe'"),
        ("PUBLISHER_MAIL__CONNECTIONS", "true", "expected an integer, got 'true'"),
        ("PUBLISHER_MAIL__CONNECTIONS", "0", "must be >= 1, got 0"),
        ("PUBLISHER_MAIL__RATE_PER_SECOND", "fast", "expected a number, got 'fast'"),
        ("PUBLISHER_FEEDS__ARCHIVE_SIZE", "5", "must be >= 10, got 5"),
    ]:
        monkeypatch.setenv(name, value)
        with pytest.raises(ConfigError) as caught:
            load_settings(config)
        assert str(caught.value) == f"{VAR}{name}: {message}"
        monkeypatch.delenv(name)


def test_a_section_read_alone_names_its_keys() -> None:
    relays = MailSettings.from_mapping(
        {"from": "K <k@example.org>", "relays": [{"url": "smtp://a"}]}
    )
    assert relays.from_ == "K <k@example.org>"
    assert relays.relays == [RelaySettings(url="smtp://a")]
    with pytest.raises(ConfigError, match=r"^relays\.weight: must be <= 1000, got 1001$"):
        MailSettings.from_mapping({"relays": [{"url": "smtp://a", "weight": 1001}]})
    with pytest.raises(ConfigError, match=r"^from_: unknown setting$"):
        MailSettings.from_mapping({"from_": "K <k@example.org>"})


def test_file_cannot_set_config_path(tmp_path: Path) -> None:
    config = write(tmp_path / DEFAULT_CONFIG, 'config_path = "/etc/passwd"\n[site]\n')
    with pytest.raises(ConfigError, match=r"publisher\.toml:1: config_path: unknown setting$"):
        load_settings(config)


def test_env_override_through_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = write(tmp_path / DEFAULT_CONFIG, "[site]\n")
    monkeypatch.setenv("PUBLISHER_SITE__TIMEZONE", "Pluto/Base")
    result = run_module("--config", config, "articles", "list")
    assert result.exit_code == 2
    assert result.error_lines == [
        "error: environment variable PUBLISHER_SITE__TIMEZONE: unknown time zone: "
        "'Pluto/Base' (use an IANA name like Asia/Jakarta)"
    ]


def test_relative_paths_resolve_against_the_config_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    config = write(
        site / DEFAULT_CONFIG,
        '[site]\ntemplates_dir = "my-templates"\n'
        '[database]\nurl = "sqlite:///data/pub.db"\n'
        '[mail]\ndkim_key_file = "keys/dkim.pem"\n',
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    settings = load_settings(Path("..") / "site" / DEFAULT_CONFIG)
    assert settings.config_path == config
    assert settings.database.url == f"sqlite:///{site / 'data' / 'pub.db'}"
    assert settings.site.templates_dir == site / "my-templates"
    assert settings.mail.dkim_key_file == site / "keys" / "dkim.pem"

    result = invoke(capsys, "--config", Path("..") / "site" / DEFAULT_CONFIG, "db", "upgrade")
    assert result.exit_code == 0, result.stderr
    assert (site / "data" / "pub.db").is_file()
    assert not (elsewhere / "data").exists()

    absolute = tmp_path / "abs.db"
    write(config, f'[database]\nurl = "sqlite:///{absolute}"\n')
    assert load_settings(config).database.url == f"sqlite:///{absolute}"


def test_durations() -> None:
    assert parse_duration("90s") == timedelta(seconds=90)
    assert parse_duration("15m") == timedelta(minutes=15)
    assert parse_duration("24h") == timedelta(hours=24)
    assert parse_duration("7d") == timedelta(days=7)
    assert parse_duration("2w") == timedelta(weeks=2)
    assert parse_duration("1.5h") == timedelta(minutes=90)
    assert parse_duration("250ms") == timedelta(milliseconds=250)
    assert parse_duration(45) == timedelta(seconds=45)
    assert parse_duration("45") == timedelta(seconds=45)
    for bad in ("soon", "-5s", "5 years", "", True):
        with pytest.raises(ValueError, match="not a duration"):
            parse_duration(bad)


def test_init_writes_commented_config_and_creates_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "news"
    result = invoke(
        capsys,
        "init",
        target,
        "--title",
        'Kabar "Timur"',
        "--base-url",
        "https://kabar.example.id/",
        "--language",
        "en",
        "--timezone",
        "Asia/Makassar",
    )
    assert result.exit_code == 0, result.stderr
    config = target / DEFAULT_CONFIG
    text = config.read_text(encoding="utf-8")
    assert sum(1 for line in text.splitlines() if line.lstrip().startswith("#")) >= 10
    assert "PUBLISHER_MAIL__SMTP_URL" in text  # the env rule is explained in the file
    data = tomllib.loads(text)
    assert data["site"]["title"] == 'Kabar "Timur"'
    assert data["site"]["language"] == "en"
    assert data["site"]["timezone"] == "Asia/Makassar"
    secret = data["web"]["secret_key"]
    assert len(secret) >= 32

    settings = load_settings(config)
    assert settings.site.base_url == "https://kabar.example.id"
    assert settings.database.url == f"sqlite:///{target / 'publisher.db'}"
    assert db.current_revision(settings.database.url) == db.head_revision()
    with sqlite3.connect(target / "publisher.db") as connection:
        tables = {row[0] for row in connection.execute("select name from sqlite_master")}
        assert {"articles", "article_tags", "subscribers", "site_state"} <= tables

    second = invoke(capsys, "init", tmp_path / "other")
    assert second.exit_code == 0, second.stderr
    other = tomllib.loads((tmp_path / "other" / DEFAULT_CONFIG).read_text(encoding="utf-8"))
    assert other["web"]["secret_key"] != secret
    assert other["site"]["timezone"] == "Asia/Jakarta"
    assert other["site"]["language"] == "id"

    again = invoke(capsys, "init", target)
    assert again.exit_code == 2
    assert again.error_lines == [
        f"error: {config}: already exists; remove it or choose another folder"
    ]
    assert load_settings(config).web.secret_key == secret  # not overwritten


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            ["--timezone", "Asia/Atlantis"],
            r"error: --timezone: unknown time zone: 'Asia/Atlantis'.*",
        ),
        (["--base-url", "kabar.example.id"], r"error: .*site\.base_url: must be an absolute.*"),
        (["--language", "Bahasa Indonesia"], r"error: .*site\.language: not a language tag.*"),
    ],
)
def test_init_rejects_bad_flags_without_writing(
    flags: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = invoke(capsys, "init", tmp_path / "x", *flags)
    assert result.exit_code == 2
    assert len(result.error_lines) == 1
    assert re.fullmatch(message, result.error_lines[0]), result.stderr
    assert not (tmp_path / "x" / DEFAULT_CONFIG).exists()


def test_template_mentions_every_user_facing_section() -> None:
    for section in (
        "[site]",
        "[database]",
        "[mail]",
        "[digest]",
        "[web]",
        "[feeds]",
        "[metrics]",
        "[webhooks]",
        "[log]",
        "[fetch]",
        "[[sources]]",
    ):
        assert section in CONFIG_TEMPLATE
    assert {name.split(".")[0] for name in setting_names()} == {
        "site",
        "database",
        "mail",
        "digest",
        "web",
        "feeds",
        "metrics",
        "webhooks",
        "log",
        "fetch",
        "sources",
    }


def test_db_upgrade(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write(tmp_path / DEFAULT_CONFIG, '[database]\nurl = "sqlite:///store/p.db"\n')
    first = invoke(capsys, "--config", config, "db", "upgrade")
    assert first.exit_code == 0, first.stderr
    head = db.head_revision()
    assert first.stdout.strip() == f"database upgraded from empty to {head}"
    assert db.current_revision(f"sqlite:///{tmp_path / 'store' / 'p.db'}") == head
    second = invoke(capsys, "--config", config, "db", "upgrade")
    assert second.stdout.strip() == f"database already at {head}"


def test_db_upgrade_on_postgres(postgres_server: str | None, tmp_path: Path) -> None:
    if postgres_server is None:
        pytest.skip("PostgreSQL not available (set PUBLISHER_TEST_POSTGRES_URL)")
    from tests.services import fresh_postgres_database

    url = fresh_postgres_database(postgres_server)
    config = write(tmp_path / DEFAULT_CONFIG, f'[database]\nurl = "{url}"\n')
    result = run_module("--config", config, "db", "upgrade")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == f"database upgraded from empty to {db.head_revision()}"
    assert db.current_revision(url) == db.head_revision()


def test_help_and_version() -> None:
    result = run_module("--help")
    assert result.exit_code == 0
    assert result.stdout.startswith("Usage: publisher [OPTIONS] COMMAND [ARGS]...")
    for command in ("init", "db", "articles", "demo"):
        assert re.search(rf"^\s+{command}\s", result.stdout, re.M), command
    assert "--config" in result.stdout
    version = run_module("--version")
    assert version.exit_code == 0
    assert re.fullmatch(r"publisher, version \d+\.\d+\.\d+\S*\n", version.stdout)


def test_unusable_database_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x", encoding="utf-8")
    not_a_db = tmp_path / "notes.db"
    not_a_db.write_text("these are notes, not a database\n" * 200, encoding="utf-8")
    cases = {
        "sqlite:///not-a-folder/p.db": f"cannot create the folder {blocker}: File exists",
        "sqlite:///notes.db": "DatabaseError: file is not a database",
    }
    for url, reason in cases.items():
        config = write(tmp_path / DEFAULT_CONFIG, f'[database]\nurl = "{url}"\n')
        result = invoke(capsys, "--config", config, "articles", "list")
        assert result.exit_code == 1
        assert len(result.error_lines) == 1, result.stderr
        assert result.error_lines[0].startswith("error: database sqlite:///"), result.stderr
        assert result.error_lines[0].endswith(reason), result.stderr


def test_unreachable_postgres_is_one_line(tmp_path: Path) -> None:
    from tests.services import free_port

    url = f"postgresql://nobody:secret@127.0.0.1:{free_port()}/nothing"
    config = write(tmp_path / DEFAULT_CONFIG, f'[database]\nurl = "{url}"\n')
    result = run_module("--config", config, "articles", "list")
    assert result.exit_code == 1
    assert len(result.error_lines) == 1, result.stderr
    line = result.error_lines[0]
    assert line.startswith("error: database postgresql://nobody:***@127.0.0.1:"), line
    assert "Connection refused" in line
    assert "secret" not in result.stderr


def test_commented_examples_in_the_template_are_valid_settings(tmp_path: Path) -> None:
    from publisher.cli.init import toml_string
    from publisher.config import settings_from_mapping

    text = CONFIG_TEMPLATE.format(
        title=toml_string("T"),
        base_url=toml_string("https://kabar.example.id"),
        language=toml_string("id"),
        timezone=toml_string("Asia/Jakarta"),
        mail_from=toml_string("T <t@kabar.example.id>"),
        secret_key=toml_string("k" * 32),
    )
    example = re.compile(r"^# ?((?:[a-z_]+ = .+)|(?:\[\[?[a-z]+\]\]?))$")
    lines = [example.sub(r"\1", line) for line in text.splitlines()]
    uncommented = "\n".join(lines) + "\n"
    assert uncommented.count("\n# ") < text.count("\n# ")
    (tmp_path / "dkim.key").write_text("not checked here", encoding="utf-8")
    settings = settings_from_mapping(
        tomllib.loads(uncommented), tmp_path / DEFAULT_CONFIG, uncommented
    )
    assert settings.mail.dkim_domain == "example.org"
    assert settings.sources[0].url == "https://example.org/feed.xml"
    assert settings.site.templates_dir == tmp_path / "templates"


def test_init_rejects_a_language_without_translations(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"--language: no built-in translation for 'fr'"):
        init_site(tmp_path / "fr", language="fr")
    assert not (tmp_path / "fr" / "publisher.toml").exists()
