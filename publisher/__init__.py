"""Publisher: a self-hosted newsletter and RSS/Atom/JSON Feed publishing service."""

from __future__ import annotations

__version__ = "0.1.0"
