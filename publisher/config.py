"""Typed settings: publisher.toml first, then PUBLISHER_<SECTION>__<KEY> environment variables."""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping
from datetime import time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, get_origin
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
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


class RelaySettings(_Section):
    """One [[mail.relays]] entry: an SMTP relay, its share of the mail and its own limits."""

    url: str
    weight: int = Field(1, ge=1, le=1000)
    connections: int = Field(4, ge=1, le=64)
    rate_per_second: float = Field(0, ge=0)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not re.match(r"^smtps?://", value):
            raise ValueError(f"must start with smtp:// or smtps://, got {value!r}")
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
    unsubscribe_notice: bool = False
    soft_bounce_limit: int = Field(3, ge=1)
    soft_bounce_window: Duration = timedelta(days=30)
    relays: list[RelaySettings] = []
    relay_cooldown: Duration = timedelta(seconds=60)

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


class MetricsSettings(_Section):
    """The [metrics] section: where Prometheus reads /metrics (nowhere public by default)."""

    listen: str = ""
    token: str = ""

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        if value and not re.fullmatch(r"(\[[0-9a-fA-F:.]+\]|[\w.-]+):\d{1,5}", value):
            raise ValueError(f"must be HOST:PORT, e.g. 127.0.0.1:9108, got {value!r}")
        return value

    @field_validator("token")
    @classmethod
    def _token(cls, value: str) -> str:
        if value and (len(value) < 16 or not value.isascii() or any(c.isspace() for c in value)):
            raise ValueError("must be at least 16 printable ASCII characters without spaces")
        return value


class WebhookSettings(_Section):
    """The [webhooks] section: provider bounce and complaint webhooks (each off until set)."""

    ses_topics: list[str] = []
    postmark_username: str = ""
    postmark_password: str = ""
    mailgun_signing_key: str = ""
    sendgrid_public_key: str = ""
    max_age: Duration = timedelta(minutes=5)

    @field_validator("ses_topics")
    @classmethod
    def _topics(cls, value: list[str]) -> list[str]:
        for topic in value:
            if not re.fullmatch(r"arn:aws[\w-]*:sns:[a-z0-9-]+:\d{12}:[\w-]{1,256}", topic):
                raise ValueError(f"not an SNS topic ARN: {topic!r}")
        return value

    @field_validator("postmark_password", "mailgun_signing_key")
    @classmethod
    def _secret(cls, value: str) -> str:
        if value and len(value) < 16:
            raise ValueError("must be at least 16 characters")
        return value


class LogSettings(_Section):
    """The [log] section: how long-running commands log."""

    format: Literal["text", "json"] = "text"
    level: Literal["debug", "info", "warning", "error"] = "info"


class FetchSettings(_Section):
    """The [fetch] section: how pages and followed feeds are fetched."""

    allow_private_addresses: bool = False


class SourceSettings(_Section):
    """One [[sources]] entry: a feed to follow and import."""

    url: str
    tags: list[str] = []


class Settings(BaseModel):
    """Every setting, loaded once per process."""

    model_config = ConfigDict(extra="forbid", validate_default=True)

    site: SiteSettings = SiteSettings()
    database: DatabaseSettings = DatabaseSettings()
    mail: MailSettings = MailSettings()
    digest: DigestSettings = DigestSettings()
    web: WebSettings = WebSettings()
    feeds: FeedSettings = FeedSettings()
    metrics: MetricsSettings = MetricsSettings()
    webhooks: WebhookSettings = WebhookSettings()
    log: LogSettings = LogSettings()
    fetch: FetchSettings = FetchSettings()
    sources: list[SourceSettings] = []

    #: The file these settings came from (None when built from defaults alone).
    config_path: Path | None = Field(None, exclude=True)

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
    overlay = EnvOverlay.read(os.environ)
    if "config_path" in data:
        # A field of ours, not a setting: the file cannot name itself.
        where = str(config_path) if config_path else "settings"
        line = _line_of(text, ("config_path",))
        raise ConfigError(f"{where}{f':{line}' if line else ''}: config_path: unknown setting")
    try:
        settings = Settings.model_validate(overlay.apply(data))
    except ValidationError as exc:
        raise ConfigError(_describe(exc, config_path, text, overlay)) from None
    settings.config_path = config_path
    _resolve_paths(settings)
    return settings


#: What one PUBLISHER_* value may hold: the file's own settings need a few levels.
ENV_VALUE_MAX_CHARS = 65536
ENV_JSON_MAX_DEPTH = 16


class EnvOverlay:
    """The PUBLISHER_<SECTION>[__<KEY>] variables, as values to lay over the file's.

    pydantic-settings did this until its import (its sources, dotenv, cloud providers)
    cost every command a tenth of a second; the rules are the ones it applied here:
    names are not case sensitive, a section or a list is JSON, a key's other values are
    strings that validation reads as the file's would be, and a variable wins over the
    file while the rest of its section still comes from the file. Unlike it, each value
    remembers its variable, so an error inside JSON names the variable, not the file.
    """

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        #: Setting path (("mail", "timeout"), ("sources",)) -> the variable that set it.
        self.origins: dict[tuple[str, ...], str] = {}

    @classmethod
    def read(cls, environ: Mapping[str, str]) -> EnvOverlay:
        """Collect the variables naming a section of Settings; ignore other PUBLISHER_ names."""
        overlay = cls()
        seen: dict[str, str] = {}
        # A section's JSON first, so its keys' own variables refine it, as they always did.
        for name in sorted(environ, key=lambda n: (n.count("__"), n)):
            if not name.upper().startswith(ENV_PREFIX):
                continue
            section, nested, key = name[len(ENV_PREFIX) :].lower().partition("__")
            if section not in _SECTIONS:
                continue  # PUBLISHER_CONFIG and the like: not a setting
            # Two spellings of one name (PUBLISHER_X and publisher_x): neither wins silently.
            if name.lower() in seen:
                raise ConfigError(
                    f"environment variables {seen[name.lower()]} and {name} set the same setting"
                )
            seen[name.lower()] = name
            if not nested:
                overlay._set_section(name, section, _env_json(name, environ[name]))
                continue
            keys = _section_keys(section)
            if key not in keys:
                raise ConfigError(f"environment variable {name}: unknown setting")
            real_key, complex_value = keys[key]
            value = _env_json(name, environ[name]) if complex_value else environ[name]
            overlay._set_key(name, section, real_key, value)
        return overlay

    def _set_section(self, name: str, section: str, value: Any) -> None:
        self.values[section] = value
        if _section_keys(section) and isinstance(value, dict):
            # A table: its keys replace the file's one by one, so each is the variable's.
            for key in value:
                self.origins[(section, str(key))] = name
        else:
            self.origins[(section,)] = name

    def _set_key(self, name: str, section: str, key: str, value: Any) -> None:
        table = self.values.setdefault(section, {})
        if not isinstance(table, dict):
            raise ConfigError(
                f"environment variable {name}: {self.origins[(section,)]} is not a table"
            )
        table[key] = value
        self.origins[(section, key)] = name

    def apply(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """Return the file's mapping with these values laid over it, key by key."""
        merged = dict(data)
        for section, value in self.values.items():
            below = merged.get(section)
            if _section_keys(section) and isinstance(value, dict) and isinstance(below, dict):
                merged[section] = {**below, **value}
            else:
                merged[section] = value
        return merged

    def origin(self, loc: tuple[str, ...]) -> str | None:
        """Return the variable that set the value at ``loc`` (or a list holding it)."""
        for end in range(len(loc), 0, -1):
            if loc[:end] in self.origins:
                return self.origins[loc[:end]]
        return None


#: The top-level settings a PUBLISHER_<SECTION> variable can name.
_SECTIONS = tuple(name for name in Settings.model_fields if name != "config_path")


def _section_keys(section: str) -> dict[str, tuple[str, bool]]:
    """Map a section's keys, lowercased, to their spelling and whether they are JSON."""
    annotation = Settings.model_fields[section].annotation
    if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
        return {}  # a list ([[sources]]): set whole
    keys: dict[str, tuple[str, bool]] = {}
    for name, field in annotation.model_fields.items():
        spelled = field.alias or name
        keys[spelled.lower()] = (spelled, _is_complex(field.annotation))
    return keys


def _is_complex(annotation: Any) -> bool:
    """Tell whether a setting is a list, table or model, which a variable gives as JSON."""
    origin = get_origin(annotation)
    if origin in (list, dict, set, tuple):
        return True
    return isinstance(annotation, type) and issubclass(annotation, BaseModel | dict | list)


def _env_json(name: str, value: str) -> Any:
    """Decode a section or list given in a variable, bounded in size and depth."""
    if len(value) > ENV_VALUE_MAX_CHARS:
        raise ConfigError(
            f"environment variable {name}: longer than {ENV_VALUE_MAX_CHARS} characters"
        )
    try:
        decoded = json.loads(value)
    except RecursionError:
        raise ConfigError(f"environment variable {name}: JSON nested too deeply") from None
    except ValueError:
        raise ConfigError(f"environment variable {name}: not valid JSON") from None
    if _depth(decoded) > ENV_JSON_MAX_DEPTH:
        raise ConfigError(
            f"environment variable {name}: JSON nested deeper than {ENV_JSON_MAX_DEPTH} levels"
        )
    return decoded


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(item) for item in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(item) for item in value), default=0)
    return 0


def _describe_toml(exc: tomllib.TOMLDecodeError, config_path: Path) -> str:
    """Rewrite tomllib's "msg (at line N, column M)" as "path:N: msg (column M)"."""
    message = str(exc)
    match = re.fullmatch(r"(.*) \(at line (\d+), column (\d+)\)", message, re.S)
    if match is None:
        return f"{config_path}: invalid TOML: {message}"
    return f"{config_path}:{match[2]}: invalid TOML: {match[1]} (column {match[3]})"


def _describe(
    exc: ValidationError, config_path: Path | None, text: str, overlay: EnvOverlay
) -> str:
    error = exc.errors()[0]
    loc = [str(part) for part in error["loc"] if not isinstance(part, int)]
    key = ".".join(loc) or "(top level)"
    message = error["msg"]
    if error["type"] == "extra_forbidden":
        message = "unknown setting"
    elif message.startswith("Value error, "):
        message = message.removeprefix("Value error, ")
    origin = overlay.origin(tuple(loc))
    if origin is not None:
        # A value inside a variable's JSON: say which key of it.
        exact = origin.lower() == (ENV_PREFIX + "__".join(loc)).lower()
        return f"environment variable {origin}: {'' if exact else key + ': '}{message}"
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
