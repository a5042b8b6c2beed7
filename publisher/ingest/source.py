"""Read an input file safely: size limit, binary and encoding checks, times from metadata."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

from publisher.errors import InputError

MAX_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class SourceText:
    """A decoded input: its path (for messages) and its text with a BOM and CRLFs removed."""

    path: Path
    text: str


def read_text_file(path: Path, *, follow_symlinks: bool = True) -> SourceText:
    """Read a UTF-8 text file, or raise InputError naming the file and line at fault."""
    data = read_bytes_file(path, follow_symlinks=follow_symlinks)
    return SourceText(path, decode_text(data, str(path)))


def read_bytes_file(path: Path, *, follow_symlinks: bool = True) -> bytes:
    """Read a regular file of at most 10 MB, or raise InputError naming it.

    With ``follow_symlinks`` false a link is refused even if it appears after a check.
    """
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from exc
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not a file")
    if size > MAX_BYTES:
        raise InputError(f"{path}: file is {size:,} bytes, over the 10 MB limit")
    try:
        # Read at most one byte past the limit: a device or pipe reports size 0 and may never end.
        flags = os.O_RDONLY | (0 if follow_symlinks else os.O_NOFOLLOW)
        with os.fdopen(os.open(path, flags), "rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        if not follow_symlinks and path.is_symlink():
            raise InputError(f"{path}: symbolic link, not followed") from None
        raise InputError(f"{path}: cannot read: {exc.strerror}") from exc
    if len(data) > MAX_BYTES:
        raise InputError(f"{path}: input is over the 10 MB limit")
    return data


def decode_text(data: bytes, name: str) -> str:
    """Decode UTF-8 input, rejecting empty, binary and undecodable data with a located error."""
    if len(data) > MAX_BYTES:
        raise InputError(f"{name}: input is {len(data):,} bytes, over the 10 MB limit")
    if not data.strip():
        raise InputError(f"{name}: file is empty")
    if b"\x00" in data[:8192]:
        raise InputError(f"{name}: binary file (contains NUL bytes), expected text")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        offset = exc.start + (3 if data.startswith(b"\xef\xbb\xbf") else 0)
        line = data[: exc.start].count(b"\n") + 1
        raise InputError(
            f"{name}:{line}: not UTF-8 text (byte 0x{data[offset]:02x}); save the file as UTF-8"
        ) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def to_utc(value: object, tz: ZoneInfo, what: str) -> datetime:
    """Read a date or datetime (object or ISO 8601 text); naive values are in ``tz``."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime.combine(value, time(0, 0))
    elif isinstance(value, str) and value.strip():
        text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise InputError(f"{what}: not an ISO 8601 date: {value!r}") from None
    else:
        raise InputError(f"{what}: not a date: {value!r}")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    return moment.astimezone(ZoneInfo("UTC"))
