"""Run the web app on uvicorn (the only uvicorn import)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from publisher import logs
from publisher.errors import ConfigError, PublisherError
from publisher.metrics import metrics_listener
from publisher.site import Site
from publisher.web.app import create_app
from subscribers.errors import TokenError
from subscribers.tokens import Tokens


def _config(
    site: Site,
    host: str,
    port: int,
    *,
    access_log: bool,
    own_logging: bool = False,
    **options: object,
) -> uvicorn.Config:
    return uvicorn.Config(
        create_app(site, **options),  # type: ignore[arg-type]
        host=host,
        port=port,
        access_log=access_log,
        log_level="info",
        server_header=False,
        proxy_headers=True,
        lifespan="on",
        # None: keep the handlers publisher.logs installed (format, scrubbing).
        log_config=None if own_logging else uvicorn.config.LOGGING_CONFIG,
    )


def serve(
    site: Site, host: str = "127.0.0.1", port: int = 8000, *, access_log: bool = True
) -> None:
    """Serve ``site`` until interrupted."""
    try:
        Tokens(site.settings.web.secret_key)
    except TokenError as exc:
        # Without a key every subscription page would answer 500: refuse to start instead.
        raise ConfigError(f"{exc} (`publisher init` writes one)") from exc
    logs.configure(site.settings.log)
    listener = metrics_listener(site)
    server = uvicorn.Server(_config(site, host, port, access_log=access_log, own_logging=True))
    try:
        server.run()
    except SystemExit:
        # uvicorn exits the process when it cannot bind; say so in our one-line form.
        if server.started:
            raise
    finally:
        if listener is not None:
            listener.close()
    if not server.started:
        raise PublisherError(f"cannot serve on {host}:{port} (is the port in use?)")


@contextmanager
def running(
    site: Site, host: str = "127.0.0.1", port: int = 0, *, poll_interval: float = 1.0
) -> Iterator[str]:
    """Run the server in a thread with its own event loop; yield its base URL."""
    config = _config(site, host, port, access_log=False, poll_interval=poll_interval)
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
