"""Run the web app on uvicorn (the only uvicorn import)."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from publisher.errors import ConfigError, PublisherError
from publisher.site import Site
from publisher.web.app import create_app
from subscribers.errors import TokenError
from subscribers.tokens import Tokens

# Unsubscribe and preferences tokens never expire: whoever reads a log line holding one
# could act for that reader. Token paths lose the token; secret-looking query values go.
_TOKEN_PATH = re.compile(r"^(/(?:unsubscribe|preferences|confirm)/)[^/?#]+")
_SECRET_QUERY = re.compile(
    r"([?&;][^=&;?]*(?:token|key|secret|sig|signature|code|password)=)[^&;#]*", re.I
)
REDACTED = "[redacted]"


def redact_path(path: str) -> str:
    """Return a request path and query fit for the access log: no tokens in it."""
    path = _TOKEN_PATH.sub(r"\1" + REDACTED, path)
    return _SECRET_QUERY.sub(r"\1" + REDACTED, path)


class RedactTokens(logging.Filter):
    """Rewrite uvicorn access-log records so no token reaches the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact the path argument of an access-log record; keep the record."""
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], redact_path(args[2]), *args[3:])
        return True


_ACCESS_FILTER = RedactTokens()


def _config(
    site: Site, host: str, port: int, *, access_log: bool, **options: object
) -> uvicorn.Config:
    config = uvicorn.Config(
        create_app(site, **options),  # type: ignore[arg-type]
        host=host,
        port=port,
        access_log=access_log,
        log_level="info",
        server_header=False,
        proxy_headers=True,
        lifespan="on",
    )
    # After Config, which configures logging: the filter must outlive that set-up.
    access = logging.getLogger("uvicorn.access")
    if _ACCESS_FILTER not in access.filters:
        access.addFilter(_ACCESS_FILTER)
    return config


def serve(
    site: Site, host: str = "127.0.0.1", port: int = 8000, *, access_log: bool = True
) -> None:
    """Serve ``site`` until interrupted."""
    try:
        Tokens(site.settings.web.secret_key)
    except TokenError as exc:
        # Without a key every subscription page would answer 500: refuse to start instead.
        raise ConfigError(f"{exc} (`publisher init` writes one)") from exc
    server = uvicorn.Server(_config(site, host, port, access_log=access_log))
    try:
        server.run()
    except SystemExit:
        # uvicorn exits the process when it cannot bind; say so in our one-line form.
        if server.started:
            raise
    if not server.started:
        raise PublisherError(f"cannot serve on {host}:{port} (is the port in use?)")


@contextmanager
def running(
    site: Site,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    poll_interval: float = 1.0,
    access_log: bool = False,
) -> Iterator[str]:
    """Run the server in a thread with its own event loop; yield its base URL."""
    config = _config(site, host, port, access_log=access_log, poll_interval=poll_interval)
    if not access_log:
        config.log_level = "warning"
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="publisher-web", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise PublisherError(f"web server did not start on {host}:{port}")
        time.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()
    try:
        yield f"http://{bound[0]}:{bound[1]}"
    finally:
        server.should_exit = True
        thread.join(15)
