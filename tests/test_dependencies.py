"""Dependency rules read from the source: subscribers/ apart, APScheduler in one module."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: The only modules of Publisher that subscribers/ may import: leaves with no wiring.
SHARED_LEAVES = {"publisher.columns", "publisher.content.slugs"}


def imports(path: Path) -> set[str]:
    """Return every module a source file imports (absolute names)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def module_file(name: str) -> Path:
    """Return the source file of one of our modules."""
    return ROOT / (name.replace(".", "/") + ".py")


def ours(name: str) -> bool:
    """Tell whether a module name is Publisher's or subscribers'."""
    return name.split(".")[0] in ("publisher", "subscribers")


def test_subscribers_imports_only_shared_leaves_of_publisher() -> None:
    offenders = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in sorted((ROOT / "subscribers").rglob("*.py"))
        for name in imports(path)
        if name.split(".")[0] == "publisher" and name not in SHARED_LEAVES
    }
    assert offenders == set()


def test_shared_leaves_import_nothing_of_ours() -> None:
    for leaf in SHARED_LEAVES:
        assert {name for name in imports(module_file(leaf)) if ours(name)} == set(), leaf


def test_apscheduler_is_imported_by_the_scheduler_module_only() -> None:
    importers = {
        str(path.relative_to(ROOT))
        for folder in ("publisher", "subscribers")
        for path in (ROOT / folder).rglob("*.py")
        if any(name.split(".")[0] == "apscheduler" for name in imports(path))
    }
    assert importers == {"publisher/scheduling.py"}
