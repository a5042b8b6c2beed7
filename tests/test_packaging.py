"""The wheel carries templates, samples and migrations, and works installed non-editable."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def shipped_files(folder: Path) -> list[str]:
    """List the files under ``folder`` that belong in the wheel, relative to it."""
    return sorted(
        path.relative_to(folder).as_posix()
        for path in folder.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the project's wheel once into a temporary folder."""
    out = tmp_path_factory.mktemp("wheel")
    # hatchling is a dev dependency, so no network is needed for an isolated build env.
    result = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"),
            *("--quiet", "--wheel-dir", str(out), str(ROOT)),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    [built] = out.glob("publisher-*.whl")
    return built


def test_wheel_contents(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        scripts = archive.read(entry_points).decode()
    templates = shipped_files(ROOT / "templates")
    assert any(name.startswith("email/") for name in templates)
    assert any(name.startswith("locale/") for name in templates)
    for name in templates:
        assert f"publisher/_templates/{name}" in names, name
    samples = shipped_files(ROOT / "publisher" / "samples")
    assert len(samples) >= 8
    for name in samples:
        assert f"publisher/samples/{name}" in names, name
    for name in shipped_files(ROOT / "publisher" / "migrations"):
        assert f"publisher/migrations/{name}" in names, name
    assert "publisher/__main__.py" in names
    assert "subscribers/models.py" in names
    assert not any(name.startswith(("tests/", "templates/", "benchmarks/")) for name in names)
    assert not any(name.endswith(".pyc") for name in names)
    assert "publisher = publisher.cli:main" in scripts


def test_installed_copy_finds_its_own_templates(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "installed"
    install = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-compile"),
            *("--target", str(target), str(wheel)),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert install.returncode == 0, install.stderr
    env = dict(os.environ)
    # The installed copy first; third-party packages still come from this venv.
    env["PYTHONPATH"] = str(target)
    probe = (
        "import publisher, publisher.resources as r;"
        "print(publisher.__file__); print(r.templates_root()); print(r.locale_dir());"
        "print(r.samples_dir()); print(len(list(r.samples_dir().glob('*.md'))));"
        "print((r.templates_root() / 'email').is_dir())"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    module, templates, locale, samples, count, has_email = result.stdout.splitlines()
    package = target / "publisher"
    assert Path(module) == package / "__init__.py"
    assert Path(templates) == package / "_templates"
    assert Path(locale) == package / "_templates" / "locale"
    assert Path(samples) == package / "samples"
    assert int(count) >= 8
    assert has_email == "True"

    # The installed package migrates a new site and imports its own samples.
    def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "publisher", *map(str, args)],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=env,
            timeout=120,
            check=False,
        )

    init = run("init", tmp_path / "site")
    assert init.returncode == 0, init.stderr
    added = run("--config", tmp_path / "site" / "publisher.toml", "articles", "add", samples)
    assert added.returncode == 0, added.stderr
    assert f"{count} created, 0 updated, 0 unchanged, 0 failed" in added.stdout


def test_a_plain_pip_install_gets_lxml_html_clean() -> None:
    # lxml 6 moved lxml.html.clean (imported by justext, under trafilatura) into
    # lxml_html_clean; Debian's pip 23 does not match lxml's normalized "html-clean" extra
    # to the "html_clean" justext asks for, so our own metadata must name the package.
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {dependency.split(">")[0].split("<")[0].split("[")[0] for dependency in dependencies}
    assert {"lxml", "lxml_html_clean"} <= names
    importlib.import_module("lxml.html.clean")  # the import trafilatura's justext makes
