"""HTTP client (the only httpx import): bounded GETs for importers, form POSTs for WebSub."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from publisher import __version__
from publisher.errors import FetchError, InputError

USER_AGENT = f"Publisher/{__version__}"
MAX_BYTES = 10 * 1024 * 1024
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 20.0
TOTAL_TIMEOUT = 60.0
MAX_REDIRECTS = 5


@dataclass(frozen=True)
class Fetched:
    """One HTTP response body (or a 304) with what the importers need from its headers."""

    url: str
    status: int
    content: bytes
    content_type: str = ""
    etag: str = ""
    last_modified: str = ""

    @property
    def not_modified(self) -> bool:
        """Tell whether the server answered 304 to a conditional GET."""
        return self.status == 304


def is_url(text: str) -> bool:
    """Tell whether an argument names an http(s) URL rather than a file.

    Any other ``scheme://`` is refused here, so it is not mistaken for a file path.
    """
    scheme = urlsplit(text.strip()).scheme.lower()
    if scheme in ("http", "https"):
        return True
    if "://" in text and scheme:
        raise InputError(f"{text}: unsupported URL scheme {scheme!r} (use http or https)")
    return False


async def fetch(
    url: str,
    *,
    etag: str = "",
    last_modified: str = "",
    accept: str = "*/*",
    max_bytes: int = MAX_BYTES,
    total_seconds: float | None = None,
) -> Fetched:
    """GET ``url`` (conditionally when validators are given), or raise FetchError in one line."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise FetchError(f"{url}: not an http(s) URL")
    headers = {"User-Agent": USER_AGENT, "Accept": accept}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    limits = httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT)
    total_seconds = TOTAL_TIMEOUT if total_seconds is None else total_seconds
    try:
        # httpx timeouts bound each read, not the whole transfer; a server dripping one
        # byte at a time would otherwise hold the import forever.
        async with asyncio.timeout(total_seconds):
            return await _get(url, headers, limits, max_bytes)
    except TimeoutError:
        raise FetchError(f"{url}: timed out after {total_seconds:g} s") from None
    except httpx.TimeoutException as exc:
        raise FetchError(f"{url}: timed out ({type(exc).__name__})") from None
    except httpx.TooManyRedirects:
        raise FetchError(f"{url}: more than {MAX_REDIRECTS} redirects") from None
    except httpx.ConnectError as exc:
        raise FetchError(f"{url}: cannot connect: {_reason(exc)}") from None
    except httpx.InvalidURL as exc:
        raise FetchError(f"{url}: invalid URL: {exc}") from None
    except httpx.HTTPError as exc:
        raise FetchError(f"{url}: {type(exc).__name__}: {_reason(exc)}") from None


async def _get(url: str, headers: dict[str, str], limits: httpx.Timeout, max_bytes: int) -> Fetched:
    async with (
        httpx.AsyncClient(
            timeout=limits, follow_redirects=True, max_redirects=MAX_REDIRECTS, trust_env=False
        ) as client,
        client.stream("GET", url, headers=headers) as response,
    ):
        if response.status_code == 304:
            return _fetched(response, b"")
        if response.status_code >= 400:
            reason = response.reason_phrase or "error"
            raise FetchError(f"{url}: HTTP {response.status_code} {reason}")
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise FetchError(f"{url}: response is {int(declared):,} bytes, over the 10 MB limit")
        chunks: list[bytes] = []
        size = 0
        # Counted after decompression, so a small gzip bomb cannot slip past the limit.
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > max_bytes:
                raise FetchError(f"{url}: response is over the 10 MB limit")
            chunks.append(chunk)
        return _fetched(response, b"".join(chunks))


def _fetched(response: httpx.Response, content: bytes) -> Fetched:
    return Fetched(
        url=str(response.url),
        status=response.status_code,
        content=content,
        content_type=response.headers.get("Content-Type", ""),
        etag=response.headers.get("ETag", ""),
        last_modified=response.headers.get("Last-Modified", ""),
    )


def _reason(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


class FormPoster:
    """POST urlencoded forms over one reusable connection pool."""

    def __init__(self, timeout: float = 10.0) -> None:
        self.timeout = timeout
        self._client: httpx.AsyncClient | None = None

    async def post(self, url: str, data: Mapping[str, str]) -> int:
        """POST ``data`` to ``url`` and return the status code, or raise FetchError in one line."""
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self.timeout, trust_env=False, headers={"User-Agent": USER_AGENT}
            )
        try:
            response = await self._client.post(url, data=dict(data))
        except httpx.HTTPError as exc:
            raise FetchError(f"{url}: {type(exc).__name__}: {_reason(exc)}") from None
        return response.status_code

    async def aclose(self) -> None:
        """Close the connection pool."""
        if self._client is not None:
            await self._client.aclose()
            self._client = None
