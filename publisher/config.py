"""Typed settings: publisher.toml first, then PUBLISHER_<SECTION>__<KEY> environment variables."""

from __future__ import annotations

import os
import re
import tomllib
from datetime import time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from publisher.errors import ConfigError

CONFIG_ENV = "PUBLISHER_CONFIG"
DEFAULT_CONFIG = "publisher.toml"
ENV_PREFIX = "PUBLISHER_"

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: object) -> object:
    """Turn "90s", "15m", "24h", "7d" or a number of seconds into a timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return timedelta(seconds=float(match[1]) * _UNITS[match[2] or "s"])
    raise ValueError(f"not a duration: {value!r} (use e.g. 90s, 15m, 24h, 7d)")


def _parse_clock_time(value: object) -> object:
    if isinstance(value, time):
        return value
    if isinstance(value, str) and re.fullmatch(r"\d{1,2}:\d{2}", value.strip()):
        hour, minute = (int(p) for p in value.strip().split(":"))
        if 0 <= hour < 24 and 0 <= minute < 60:
            return time(hour, minute)
    raise ValueError(f"not a time of day: {value!r} (use HH:MM, e.g. 07:00)")


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
ClockTime = Annotated[time, BeforeValidator(_parse_clock_time)]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def validate_timezone(name: str) -> str:
    """Check that ``name`` is an IANA time zone and return it."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"unknown time zone: {name!r} (use an IANA name like Asia/Jakarta)"
        ) from exc
    return name


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class SiteSettings(_Section):
    """The [site] section: what the publication is and where it lives."""

    title: str = "Publisher"
    description: str = ""
    base_url: str = "http://127.0.0.1:8000"
    language: str = "id"
    timezone: str = "Asia/Jakarta"
    author: str = ""
    templates_dir: Path | None = None

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError(f"must be an absolute http(s) URL, got {value!r}")
        return value.rstrip("/")

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        return validate_timezone(value)

    @field_validator("language")
    @classmethod
    def _language(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z]{2,3}(-[A-Za-z0-9]{2,8})*", value):
            raise ValueError(f"not a language tag: {value!r} (use e.g. id or en)")
        return value


class DatabaseSettings(_Section):
    """The [database] section."""

    url: str = "sqlite:///publisher.db"

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("sqlite:", "postgresql:", "postgres:", "postgresql+")):
            raise ValueError(f"must be a sqlite:/// or postgresql:// URL, got {value!r}")
        return value


class MailSettings(_Section):
    """The [mail] section: sender identity, SMTP server, pacing and retries."""

    from_: str = Field("Publisher <newsletter@localhost>", alias="from")
    reply_to: str = ""
    smtp_url: str = "smtp://127.0.0.1:1025"
    connections: int = Field(4, ge=1, le=64)
    timeout: Duration = timedelta(seconds=30)
    rate_per_second: float = Field(0, ge=0)
    rate_per_hour: int = Field(0, ge=0)
    retry_initial: Duration = timedelta(seconds=60)
    retry_for: Duration = timedelta(hours=24)
    dkim_domain: str = ""
    dkim_selector: str = ""
    dkim_key_file: Path | None = None
    postal_address: str = ""
    unsubscribe_mailto: str = ""
    return_path: str = ""
    soft_bounce_limit: int = Field(3, ge=1)
    soft_bounce_window: Duration = timedelta(days=30)

    @field_validator("smtp_url")
    @classmethod
    def _smtp_url(cls, value: str) -> str:
        if not re.match(r"^smtps?://", value):
            raise ValueError(f"must start with smtp:// or smtps://, got {value!r}")
        return value


class DigestSettings(_Section):
    """The [digest] section: when digests go out and how long they are."""

    send_time: ClockTime = time(7, 0)
    max_articles: int = Field(10, ge=1, le=100)
    weekly_day: Weekday = "mon"


class WebSettings(_Section):
    """The [web] section: the public site and its feeds."""

    secret_key: str = ""
    feed_cache_seconds: int = Field(300, ge=0)
    websub_hub: str = ""
    max_request_bytes: int = Field(1024 * 1024, ge=1024)

    @field_validator("websub_hub")
    @classmethod
    def _websub_hub(cls, value: str) -> str:
        # The hub URL goes into HTTP Link headers and feeds: no spaces, quotes or brackets.
        if value and not re.fullmatch(r"https?://[^\s<>\"']+", value):
            raise ValueError(f"must be an absolute http(s) URL, got {value!r}")
        return value


class FeedSettings(_Section):
    """The [feeds] section: how much each feed document carries."""

    items: int = Field(50, ge=1, le=1000)
    archive_size: int = Field(100, ge=10, le=10000)


class FetchSettings(_Section):
    """The [fetch] section: how pages and followed feeds are fetched."""

    allow_private_addresses: bool = False


class SourceSettings(_Section):
    """One [[sources]] entry: a feed to follow and import."""

    url: str
    tags: list[str] = []


class Settings(BaseSettings):
    """Every setting, loaded once per process."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", case_sensitive=False
    )

    site: SiteSettings = SiteSettings()
    database: DatabaseSettings = DatabaseSettings()
    mail: MailSettings = MailSettings()
    digest: DigestSettings = DigestSettings()
    web: WebSettings = WebSettings()
    feeds: FeedSettings = FeedSettings()
    fetch: FetchSettings = FetchSettings()
    sources: list[SourceSettings] = []

    #: The file these settings came from (None when built from defaults alone).
    config_path: Path | None = Field(None, exclude=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment variables win over the file, which arrives as init kwargs.
        return (env_settings, init_settings)

    @property
    def base_dir(self) -> Path:
        """Return the folder relative paths are resolved against."""
        return self.config_path.parent if self.config_path else Path.cwd()

    @property
    def tz(self) -> ZoneInfo:
        """Return the site's time zone."""
        return ZoneInfo(self.site.timezone)


def resolve_config_path(path: str | os.PathLike[str] | None) -> Path:
    """Pick the config file: the argument, then $PUBLISHER_CONFIG, then ./publisher.toml."""
    chosen = path or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG
    return Path(chosen).expanduser().resolve()


def load_settings(path: str | os.PathLike[str] | None = None) -> Settings:
    """Read, validate and resolve the settings, or raise one ConfigError naming file and key."""
    config_path = resolve_config_path(path)
    try:
        raw_bytes = config_path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"{config_path}: no such configuration file (run `publisher init` to create one)"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{config_path}: cannot read: {exc.strerror}") from exc
    try:
        text = raw_bytes.decode("utf-8")
        data = tomllib.loads(text)
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{config_path}: not UTF-8 text (byte {exc.start})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(_describe_toml(exc, config_path)) from None
    return settings_from_mapping(data, config_path, text)


def settings_from_mapping(
    data: dict[str, Any], config_path: Path | None = None, text: str = ""
) -> Settings:
    """Validate a parsed configuration mapping, overlaid by the environment."""
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, config_path, text)) from None
    except SettingsError as exc:
        # Raised for an environment variable holding a section or list that is not JSON.
        field = re.search(r'field "([^"]+)"', str(exc))
        name = ENV_PREFIX + (field[1].upper() if field else "*")
        raise ConfigError(f"environment variable {name}: not valid JSON") from None
    settings.config_path = config_path
    _resolve_paths(settings)
    return settings


def _describe_toml(exc: tomllib.TOMLDecodeError, config_path: Path) -> str:
    """Rewrite tomllib's "msg (at line N, column M)" as "path:N: msg (column M)"."""
    message = str(exc)
    match = re.fullmatch(r"(.*) \(at line (\d+), column (\d+)\)", message, re.S)
    if match is None:
        return f"{config_path}: invalid TOML: {message}"
    return f"{config_path}:{match[2]}: invalid TOML: {match[1]} (column {match[3]})"


def _describe(exc: ValidationError, config_path: Path | None, text: str) -> str:
    error = exc.errors()[0]
    loc = [str(part) for part in error["loc"] if not isinstance(part, int)]
    key = ".".join(loc) or "(top level)"
    message = error["msg"]
    if error["type"] == "extra_forbidden":
        message = "unknown setting"
    elif message.startswith("Value error, "):
        message = message.removeprefix("Value error, ")
    env_name = ENV_PREFIX + "__".join(loc).upper()
    if env_name in os.environ:
        return f"environment variable {env_name}: {message}"
    where = str(config_path) if config_path else "settings"
    line = _line_of(text, tuple(error["loc"]))
    if line:
        where = f"{where}:{line}"
    return f"{where}: {key}: {message}"


def _line_of(text: str, loc: tuple[int | str, ...]) -> int | None:
    """Find the line that sets a key (else its table header), so errors point at it."""
    names = [str(part) for part in loc if not isinstance(part, int)]
    if not text or not names:
        return None
    # Which [[sources]] entry: pydantic puts the list index right after the section.
    index = next((part for part in loc if isinstance(part, int)), 0)
    section, key = (names[0], names[-1]) if len(names) > 1 else ("", names[0])
    current, seen, header_line = "", -1, None
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        header = re.fullmatch(r"\[\[?\s*([\w.-]+)\s*\]\]?.*", stripped)
        if header:
            if header_line is not None and current == section and seen == index:
                break  # left the table in question without finding the key
            current = header[1]
            if current == section or (not section and current == key):
                seen += 1
                if seen == index:
                    header_line = number
                    if not section:
                        return number
            continue
        in_table = current == section and (seen == index or not section)
        if in_table and re.match(rf"[\"']?{re.escape(key)}[\"']?\s*=", stripped):
            return number
    return header_line


def _resolve_paths(settings: Settings) -> None:
    base = settings.base_dir
    url = settings.database.url
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        relative = url.removeprefix("sqlite:///")
        if relative and relative != ":memory:":
            settings.database.url = "sqlite:///" + str((base / relative).resolve())
    if settings.site.templates_dir is not None:
        settings.site.templates_dir = (base / settings.site.templates_dir).resolve()
    if settings.mail.dkim_key_file is not None:
        settings.mail.dkim_key_file = (base / settings.mail.dkim_key_file).resolve()


def setting_names() -> list[str]:
    """List every setting as section.key, for the documentation check."""
    names: list[str] = []
    for name, field in Settings.model_fields.items():
        if name == "config_path":
            continue
        model = SourceSettings if name == "sources" else field.annotation
        assert isinstance(model, type)
        assert issubclass(model, BaseModel)
        for key, sub in model.model_fields.items():
            names.append(f"{name}.{sub.alias or key}")
    return names
