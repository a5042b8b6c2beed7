"""Typed settings: publisher.toml first, then PUBLISHER_<SECTION>__<KEY> environment variables."""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from publisher.errors import ConfigError
from publisher.settings_schema import (
    Alias,
    Bounds,
    Check,
    Loc,
    Section,
    SettingError,
    dotted,
    shown,
)
from publisher.settings_schema import parse_duration as parse_duration

CONFIG_ENV = "PUBLISHER_CONFIG"
DEFAULT_CONFIG = "publisher.toml"
ENV_PREFIX = "PUBLISHER_"

#: A length of time: "90s", "15m", "24h", "7d" or a number of seconds in the file.
Duration = timedelta
#: A time of day: "07:00" in the file.
ClockTime = time
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def validate_timezone(name: str) -> str:
    """Check that ``name`` is an IANA time zone and return it."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        # OSError: a name too long to be a file name in the zone database.
        raise ValueError(
            f"unknown time zone: {shown(name)} (use an IANA name like Asia/Jakarta)"
        ) from exc
    return name


def _base_url(value: str) -> str:
    if not re.match(r"^https?://[^/\s]+", value):
        raise ValueError(f"must be an absolute http(s) URL, got {shown(value)}")
    return value.rstrip("/")


def _language(value: str) -> str:
    if not re.fullmatch(r"[a-z]{2,3}(-[A-Za-z0-9]{2,8})*", value):
        raise ValueError(f"not a language tag: {shown(value)} (use e.g. id or en)")
    return value


def _database_url(value: str) -> str:
    if not value.startswith(("sqlite:", "postgresql:", "postgres:", "postgresql+")):
        raise ValueError(f"must be a sqlite:/// or postgresql:// URL, got {shown(value)}")
    return value


def _smtp_url(value: str) -> str:
    if not re.match(r"^smtps?://", value):
        raise ValueError(f"must start with smtp:// or smtps://, got {shown(value)}")
    return value


def _hub_url(value: str) -> str:
    # The hub URL goes into HTTP Link headers and feeds: no spaces, quotes or brackets.
    if value and not re.fullmatch(r"https?://[^\s<>\"']+", value):
        raise ValueError(f"must be an absolute http(s) URL, got {shown(value)}")
    return value


def _listen(value: str) -> str:
    if value and not re.fullmatch(r"(\[[0-9a-fA-F:.]+\]|[\w.-]+):\d{1,5}", value):
        raise ValueError(f"must be HOST:PORT, e.g. 127.0.0.1:9108, got {shown(value)}")
    return value


def _token(value: str) -> str:
    if value and (len(value) < 16 or not value.isascii() or any(c.isspace() for c in value)):
        raise ValueError("must be at least 16 printable ASCII characters without spaces")
    return value


def _topics(value: list[str]) -> list[str]:
    for topic in value:
        if not re.fullmatch(r"arn:aws[\w-]*:sns:[a-z0-9-]+:\d{12}:[\w-]{1,256}", topic):
            raise ValueError(f"not an SNS topic ARN: {shown(topic)}")
    return value


def _secret(value: str) -> str:
    if value and len(value) < 16:
        raise ValueError("must be at least 16 characters")
    return value


@dataclass(kw_only=True, slots=True)
class SiteSettings(Section):
    """The [site] section: what the publication is and where it lives."""

    title: str = "Publisher"
    description: str = ""
    base_url: Annotated[str, Check(_base_url)] = "http://127.0.0.1:8000"
    language: Annotated[str, Check(_language)] = "id"
    timezone: Annotated[str, Check(validate_timezone)] = "Asia/Jakarta"
    author: str = ""
    templates_dir: Path | None = None


@dataclass(kw_only=True, slots=True)
class DatabaseSettings(Section):
    """The [database] section."""

    url: Annotated[str, Check(_database_url)] = "sqlite:///publisher.db"


@dataclass(kw_only=True, slots=True)
class RelaySettings(Section):
    """One [[mail.relays]] entry: an SMTP relay, its share of the mail and its own limits."""

    url: Annotated[str, Check(_smtp_url)]
    weight: Annotated[int, Bounds(ge=1, le=1000)] = 1
    connections: Annotated[int, Bounds(ge=1, le=64)] = 4
    rate_per_second: Annotated[float, Bounds(ge=0)] = 0


@dataclass(kw_only=True, slots=True)
class MailSettings(Section):
    """The [mail] section: sender identity, SMTP server, pacing and retries."""

    from_: Annotated[str, Alias("from")] = "Publisher <newsletter@localhost>"
    reply_to: str = ""
    smtp_url: Annotated[str, Check(_smtp_url)] = "smtp://127.0.0.1:1025"
    connections: Annotated[int, Bounds(ge=1, le=64)] = 4
    timeout: Duration = timedelta(seconds=30)
    rate_per_second: Annotated[float, Bounds(ge=0)] = 0
    rate_per_hour: Annotated[int, Bounds(ge=0)] = 0
    retry_initial: Duration = timedelta(seconds=60)
    retry_for: Duration = timedelta(hours=24)
    dkim_domain: str = ""
    dkim_selector: str = ""
    dkim_key_file: Path | None = None
    postal_address: str = ""
    unsubscribe_mailto: str = ""
    return_path: str = ""
    unsubscribe_notice: bool = False
    soft_bounce_limit: Annotated[int, Bounds(ge=1)] = 3
    soft_bounce_window: Duration = timedelta(days=30)
    relays: list[RelaySettings] = field(default_factory=list)
    relay_cooldown: Duration = timedelta(seconds=60)


@dataclass(kw_only=True, slots=True)
class DigestSettings(Section):
    """The [digest] section: when digests go out and how long they are."""

    send_time: ClockTime = time(7, 0)
    max_articles: Annotated[int, Bounds(ge=1, le=100)] = 10
    weekly_day: Weekday = "mon"


@dataclass(kw_only=True, slots=True)
class WebSettings(Section):
    """The [web] section: the public site and its feeds."""

    secret_key: str = ""
    feed_cache_seconds: Annotated[int, Bounds(ge=0)] = 300
    websub_hub: Annotated[str, Check(_hub_url)] = ""
    max_request_bytes: Annotated[int, Bounds(ge=1024)] = 1024 * 1024


@dataclass(kw_only=True, slots=True)
class FeedSettings(Section):
    """The [feeds] section: how much each feed document carries."""

    items: Annotated[int, Bounds(ge=1, le=1000)] = 50
    archive_size: Annotated[int, Bounds(ge=10, le=10000)] = 100


@dataclass(kw_only=True, slots=True)
class MetricsSettings(Section):
    """The [metrics] section: where Prometheus reads /metrics (nowhere public by default)."""

    listen: Annotated[str, Check(_listen)] = ""
    token: Annotated[str, Check(_token)] = ""


@dataclass(kw_only=True, slots=True)
class WebhookSettings(Section):
    """The [webhooks] section: provider bounce and complaint webhooks (each off until set)."""

    ses_topics: Annotated[list[str], Check(_topics)] = field(default_factory=list)
    postmark_username: str = ""
    postmark_password: Annotated[str, Check(_secret)] = ""
    mailgun_signing_key: Annotated[str, Check(_secret)] = ""
    sendgrid_public_key: str = ""
    max_age: Duration = timedelta(minutes=5)


@dataclass(kw_only=True, slots=True)
class LogSettings(Section):
    """The [log] section: how long-running commands log."""

    format: Literal["text", "json"] = "text"
    level: Literal["debug", "info", "warning", "error"] = "info"


@dataclass(kw_only=True, slots=True)
class FetchSettings(Section):
    """The [fetch] section: how pages and followed feeds are fetched."""

    allow_private_addresses: bool = False


@dataclass(kw_only=True, slots=True)
class SourceSettings(Section):
    """One [[sources]] entry: a feed to follow and import."""

    url: str
    tags: list[str] = field(default_factory=list)


@dataclass(kw_only=True, slots=True)
class Settings(Section):
    """Every setting, loaded once per process."""

    site: SiteSettings = field(default_factory=SiteSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    mail: MailSettings = field(default_factory=MailSettings)
    digest: DigestSettings = field(default_factory=DigestSettings)
    web: WebSettings = field(default_factory=WebSettings)
    feeds: FeedSettings = field(default_factory=FeedSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)
    log: LogSettings = field(default_factory=LogSettings)
    fetch: FetchSettings = field(default_factory=FetchSettings)
    sources: list[SourceSettings] = field(default_factory=list)

    #: The file these settings came from (None when built from defaults alone). Not a
    #: setting (init=False): the loader sets it, and a file naming it is refused.
    config_path: Path | None = field(default=None, init=False)

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
    except RecursionError:
        # tomllib recurses once per nested array or inline table.
        raise ConfigError(f"{config_path}: invalid TOML: nested too deeply") from None
    return settings_from_mapping(data, config_path, text)


def settings_from_mapping(
    data: dict[str, Any], config_path: Path | None = None, text: str = ""
) -> Settings:
    """Validate a parsed configuration mapping, overlaid by the environment."""
    overlay = EnvOverlay.read(os.environ)
    try:
        settings = Settings.from_mapping(overlay.apply(data))
    except SettingError as exc:
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


#: The top-level settings a PUBLISHER_<SECTION> variable can name, and their own keys.
_SECTION_FIELDS = {setting.key: setting for setting in Settings.setting_fields()}
_SECTIONS = tuple(_SECTION_FIELDS)


def _section_keys(section: str) -> dict[str, tuple[str, bool]]:
    """Map a section's keys, lowercased, to their spelling and whether they are JSON."""
    setting = _SECTION_FIELDS[section]
    if setting.section is None or setting.is_list:
        return {}  # a list ([[sources]]): set whole
    return {sub.key.lower(): (sub.key, sub.structured) for sub in setting.section.setting_fields()}


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


def _describe(error: SettingError, config_path: Path | None, text: str, overlay: EnvOverlay) -> str:
    """Say where the bad value is: the variable that set it, else the file and line."""
    names = tuple(str(part) for part in error.loc if not isinstance(part, int))
    key = dotted(error.loc)
    origin = overlay.origin(names)
    if origin is not None:
        # A value inside a variable's JSON: say which key of it.
        exact = origin.lower() == (ENV_PREFIX + "__".join(names)).lower()
        return f"environment variable {origin}: {'' if exact else key + ': '}{error.message}"
    where = str(config_path) if config_path else "settings"
    line = _line_of(text, error.loc)
    if line:
        where = f"{where}:{line}"
    return f"{where}: {key}: {error.message}"


def _line_of(text: str, loc: Loc) -> int | None:
    """Find the line that sets a key (else its table header), so errors point at it."""
    names = [str(part) for part in loc if not isinstance(part, int)]
    if not text or not names:
        return None
    # An index followed by a key is a [[table]] entry (("mail", "relays", 1, "url"));
    # an index at the end is an item of an array value (("webhooks", "ses_topics", 2)).
    entry = next(
        (at for at in range(1, len(loc) - 1) if isinstance(loc[at], int)),
        None,
    )
    if entry is not None:
        index = int(loc[entry])
        section = ".".join(str(part) for part in loc[:entry])
        found = _find_line(text, section, index, names[-1])
        # Given inline (relays = [{...}]) rather than as [[tables]]: the array's own line.
        return found or _line_of(text, loc[:entry])
    section = ".".join(names[:-1])
    return _find_line(text, section, 0, names[-1])


def _find_line(text: str, section: str, index: int, key: str) -> int | None:
    """Find ``key`` in the ``index``-th table named ``section`` ("" for the top level)."""
    current, seen, header_line = "", -1, None
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        header = re.fullmatch(r"\[\[?\s*([\w.-]+)\s*\]\]?.*", stripped)
        if header:
            if header_line is not None and header[1] == f"{section}.{key}":
                return number  # the key is a sub-table of the entry: [sources.extra]
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
    for section in Settings.setting_fields():
        assert section.section is not None
        names.extend(f"{section.key}.{sub.key}" for sub in section.section.setting_fields())
    return names
