"""Find the files shipped with Publisher: templates, translations and sample articles."""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def templates_root() -> Path:
    """Return the built-in templates folder, installed (wheel) or in a source checkout."""
    installed = PACKAGE_DIR / "_templates"
    if installed.is_dir():
        return installed
    return PACKAGE_DIR.parent / "templates"


def template_dirs(user_dir: Path | None, kind: str) -> list[Path]:
    """Return the search path for one kind of template (email or web): the user's first."""
    dirs = [templates_root() / kind]
    if user_dir is not None:
        dirs.insert(0, user_dir / kind)
    return dirs


def locale_dir() -> Path:
    """Return the folder of gettext catalogs."""
    return templates_root() / "locale"


def samples_dir() -> Path:
    """Return the folder of sample articles used by the demo and the tests."""
    return PACKAGE_DIR / "samples"
