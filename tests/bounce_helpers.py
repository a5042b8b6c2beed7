"""Reports as a real MTA would deliver them: addressed to the VERP return path we sent from."""

from __future__ import annotations

import asyncio
from pathlib import Path

from publisher.config import load_settings
from publisher.db import transaction
from publisher.delivery.compose import return_paths
from publisher.site import Site
from subscribers import repository


def subscriber_id(site_dir: Path, email: str) -> int:
    """Return the id of a subscriber of the site in ``site_dir``."""

    async def find() -> int:
        site = Site.from_settings(load_settings(site_dir / "publisher.toml"))
        try:
            async with transaction(site.engine) as session:
                found = await repository.get_by_email(session, email)
                assert found is not None, email
                return found.id
        finally:
            await site.aclose()

    return asyncio.run(find())


def delivered_to(site_dir: Path, raw: bytes, email: str, message: str = "e1") -> bytes:
    """Return ``raw`` as delivered to the return path of ``message`` sent to ``email``."""
    settings = load_settings(site_dir / "publisher.toml")
    address = return_paths(settings).address(subscriber_id(site_dir, email), message)
    return f"Delivered-To: {address}\r\n".encode() + raw
