"""HTTP client (the only httpx import): bounded GETs for importers, form POSTs for WebSub."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpcore
import httpx

from publisher import __version__
from publisher.errors import FetchError, InputError

USER_AGENT = f"Publisher/{__version__}"
MAX_BYTES = 10 * 1024 * 1024
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 20.0
TOTAL_TIMEOUT = 60.0
MAX_REDIRECTS = 5


class NonPublicAddress(Exception):
    """Raised inside the connection when a host resolves only to non-public addresses."""

    def __init__(self, host: str, address: str) -> None:
        super().__init__(f"{host} resolves to {address}")
        self.host = host
        self.address = address


def is_public(address: str) -> bool:
    """Tell whether an IP address is globally routable (not loopback, private, link-local...)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


class _PublicOnly(httpcore.AsyncNetworkBackend):
    """Connect only to public addresses: each connection (so each redirect hop) resolves
    its host here and dials the address it checked, so DNS cannot switch in between."""

    def __init__(self) -> None:
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc.strerror}") from exc
        addresses = [str(info[4][0]) for info in infos]
        public = [address for address in addresses if is_public(address)]
        if not public:
            raise NonPublicAddress(host, addresses[0] if addresses else "nothing")
        return await self._inner.connect_tcp(
            public[0],
            port,
            timeout=timeout,
            local_address=local_address,
            socket_options=socket_options,
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise NonPublicAddress(path, "a Unix socket")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def _transport(allow_private: bool) -> httpx.AsyncHTTPTransport:
    transport = httpx.AsyncHTTPTransport(trust_env=False)
    if not allow_private:
        # httpx has no public hook for the network backend; its pool is rebuilt the way
        # httpx builds it (no proxy: trust_env is off), with our backend.
        transport._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            network_backend=_PublicOnly(),
        )
    return transport


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
    allow_private: bool = False,
) -> Fetched:
    """GET ``url`` (conditionally when validators are given), or raise FetchError in one line.

    Every hop must resolve to a public address unless ``allow_private``
    (the ``fetch.allow_private_addresses`` setting).
    """
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
            return await _get(url, headers, limits, max_bytes, allow_private)
    except NonPublicAddress as exc:
        raise FetchError(
            f"{url}: refusing to fetch from a non-public address ({exc}); "
            "set fetch.allow_private_addresses to allow it"
        ) from None
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


async def _get(
    url: str, headers: dict[str, str], limits: httpx.Timeout, max_bytes: int, allow_private: bool
) -> Fetched:
    async with (
        httpx.AsyncClient(
            timeout=limits,
            follow_redirects=True,
            max_redirects=MAX_REDIRECTS,
            trust_env=False,
            transport=_transport(allow_private),
        ) as client,
        client.stream("GET", url, headers=headers) as response,
    ):
        if response.status_code == 304:
            return _fetched(response, b"")
        if response.status_code >= 400:
            reason = _printable(response.reason_phrase) or "error"
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
    text = _printable(str(exc))
    return text or type(exc).__name__


def _printable(text: str) -> str:
    """Keep a server-supplied phrase to one short line of printable text for messages."""
    return " ".join("".join(c for c in text if c.isprintable()).split())[:200]


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
