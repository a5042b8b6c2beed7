"""Logging for long-running commands: text or one JSON object per line, secrets scrubbed.

Every record passes through :func:`scrub` whichever the format: signed links
(``/confirm/…``, ``/unsubscribe/…``, ``/preferences/…``), passwords in URLs,
``Authorization`` values and ``token=``/``password=``/``secret=``/``key=`` pairs never
reach a log line, even when a library logs them (uvicorn's access log prints paths).
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

from publisher.config import LogSettings

REDACTED = "[redacted]"
#: Longest message written; a hostile request line cannot make a log line huge.
MAX_MESSAGE = 8192

_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # Signed links carry a reader's token in the path.
    (re.compile(r"(/(?:confirm|unsubscribe|preferences|webhooks/[\w-]+)/)[^\s\"'?#/]+"), r"\1"),
    # Credentials inside URLs: scheme://user:password@host.
    (re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s:/@]*:)[^\s@/]+(@)", re.I), r"\1"),
    (re.compile(r"(\bauthorization\s*[:=]\s*)(\w+\s+)?[^\s,;\"']+", re.I), r"\1\2"),
    (re.compile(r"(\bbearer\s+)[^\s,;\"']+", re.I), r"\1"),
    (
        re.compile(
            r"(\b(?:token|password|passwd|secret|api[_-]?key|key|signature|sig)"
            r"[\"']?\s*[=:]\s*[\"']?)[^\s&,;\"']+",
            re.I,
        ),
        r"\1",
    ),
]


def scrub(text: str) -> str:
    """Replace tokens, passwords and signatures in ``text`` with a marker."""
    for pattern, keep in _PATTERNS:
        text = pattern.sub(keep + REDACTED, text)
    if len(text) > MAX_MESSAGE:
        text = text[:MAX_MESSAGE] + "…"
    return text


class ScrubFilter(logging.Filter):
    """Render each record's message once, scrubbed, so no handler sees the raw text."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Replace the message (and its arguments) with the scrubbed rendering."""
        record.msg = scrub(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        return True


_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object on one line."""

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as compact JSON: time, level, logger, message, extras."""
        event: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_") and key not in event:
                event[key] = value if isinstance(value, int | float | bool) else scrub(str(value))
        if record.exc_text:
            event["exception"] = record.exc_text
        return json.dumps(event, ensure_ascii=False, separators=(",", ":"))


def configure(settings: LogSettings, *, stream: Any = None) -> logging.Handler:
    """Send every log record to stderr in the configured format; return the handler."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(ScrubFilter())
    if settings.format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.level.upper())
    # Libraries that configure their own handlers would print twice or unscrubbed.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    # APScheduler logs every job start and end at INFO; our tick summary is enough.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    return handler
