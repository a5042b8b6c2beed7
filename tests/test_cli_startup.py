"""The CLI starts fast: checked by what it imports (deterministic), plus one generous timing.

benchmarks/startup.py prints the figures; these tests catch the regressions that would
move them: a command module or a heavy library loaded by `--help`, a renderer loaded by
`digest status`, Alembic loaded when no migration is pending, drifted static help.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import click
import pytest
import sqlalchemy as sa

from publisher import db, planning
from publisher.accounts import passwords
from publisher.accounts.models import Role, TokenScope
from publisher.cli import COMMAND_HELP, COMMAND_MODULES, cli, sending, tokens, users
from publisher.cli import subscribers as subscribers_cli
from publisher.cli.context import StartupCollector
from publisher.cli.init import init_site
from publisher.errors import StoreError
from subscribers import models as subscriber_models

ROOT = Path(__file__).resolve().parent.parent

#: Libraries no help screen may load: each costs tens to hundreds of milliseconds.
HEAVY = {
    "sqlalchemy",
    "alembic",
    "pydantic",
    "pydantic_settings",
    "fastapi",
    "starlette",
    "uvicorn",
    "rich",
    "jinja2",
    "mjml",
    "trafilatura",
    "dkim",
    "aiosmtplib",
    "httpx",
    "argon2",
    "apscheduler",
    "babel",
    "asyncio",
}
#: What a status or listing command must not load: the renderer, the importers, the
#: SMTP pool, the web app, the scheduler and (its schema being current) Alembic.
NOT_FOR_QUERIES = {
    "alembic",
    "fastapi",
    "uvicorn",
    "mjml",
    "trafilatura",
    "dkim",
    "aiosmtplib",
    "httpx",
    "apscheduler",
    "argon2",
    "publisher.web",
    "publisher.render",
    "publisher.ingest",
    "publisher.delivery.worker",
    "publisher.delivery.smtp",
    # Dropped from the dependencies (its sources cost ~0.1 s): config.py reads the
    # environment itself; this keeps it from coming back through another module.
    "pydantic_settings",
    # ~0.15 s to import: settings_schema.py validates the configuration instead, and
    # only the web API's request bodies use pydantic.
    "pydantic",
    # The bounce parser (and the email package's parser with it): sending's only.
    "subscribers.bounces",
    # Addresses are validated when written, never when listed (~20 ms of patterns).
    "email_validator",
    # A SQLite site never needs PostgreSQL's dialect (~50 ms): the store, the search
    # and the models name it only where PostgreSQL runs.
    "sqlalchemy.dialects.postgresql",
}
#: What each query command must not load beyond NOT_FOR_QUERIES: another command's
#: store. `digest status` reads the outbox and editions only: not the planner, the
#: article store or the subscriber repository.
NOT_FOR_QUERY: dict[tuple[str, ...], set[str]] = {
    ("digest", "status"): {
        "subscribers",
        "publisher.content",
        "publisher.planning",
        "publisher.delivery.editions",
    },
    ("articles", "list"): {"subscribers", "publisher.delivery"},
    ("subscribers", "list"): {"publisher.delivery"},
}

PROBE = """
import json, sys
from publisher.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
sys.stderr.write("\\nMODULES " + json.dumps(sorted(sys.modules)) + "\\n")
"""


def loaded_modules(*args: str, cwd: Path | None = None) -> tuple[set[str], str]:
    """Run the CLI in a fresh interpreter; return the modules it imported and its stdout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["COLUMNS"] = "100"
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
        check=False,
    )
    line = next(row for row in done.stderr.splitlines() if row.startswith("MODULES "))
    return set(json.loads(line.removeprefix("MODULES "))), done.stdout


def families(modules: set[str], names: set[str]) -> set[str]:
    """Return which of ``names`` (packages or dotted prefixes) appear among ``modules``."""
    return {name for name in names if any(m == name or m.startswith(name + ".") for m in modules)}


def test_help_lists_every_command_without_importing_any() -> None:
    modules, shown = loaded_modules("--help")
    assert families(modules, HEAVY) == set()
    assert [
        m for m in modules if m.startswith("publisher.cli.") and m != "publisher.cli.context"
    ] == []
    for name in COMMAND_MODULES:
        assert f"  {name} " in shown


@pytest.mark.parametrize("group", sorted(COMMAND_MODULES))
def test_each_command_help_loads_no_heavy_library(group: str) -> None:
    modules, shown = loaded_modules(group, "--help")
    assert "Usage: publisher" in shown
    assert families(modules, HEAVY) == set(), group


def test_version_loads_nothing_heavy() -> None:
    modules, shown = loaded_modules("--version")
    assert shown.startswith("publisher, version ")
    assert families(modules, HEAVY) == set()


def test_static_help_equals_each_commands_own() -> None:
    context = click.Context(cli)
    for name in sorted(COMMAND_MODULES):
        command = cli.get_command(context, name)
        assert command is not None, name
        assert COMMAND_HELP[name] == command.get_short_help_str(limit=10_000), name
    assert set(COMMAND_HELP) == set(COMMAND_MODULES)


def test_lazy_help_screen_equals_the_loaded_one() -> None:
    lazy = subprocess.run(
        [sys.executable, "-m", "publisher", "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "80"},
        timeout=300,
        check=True,
    ).stdout
    # The same screen once every command is really imported (click's own rendering).
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import click\n"
            "from publisher.cli import COMMAND_MODULES, cli, main\n"
            "ctx = click.Context(cli)\n"
            "for name in COMMAND_MODULES: cli.get_command(ctx, name)\n"
            "main(['--help'])\n",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "80"},
        timeout=300,
        check=True,
    ).stdout
    assert lazy == loaded


def test_literal_choices_equal_their_sources() -> None:
    assert sending.FREQUENCIES == planning.FREQUENCIES
    assert subscribers_cli.FREQUENCIES == subscriber_models.FREQUENCIES
    assert subscribers_cli.STATUSES == subscriber_models.STATUSES
    assert tuple(role.value for role in Role) == users.ROLES
    assert tuple(scope.value for scope in TokenScope) == tokens.SCOPES


@pytest.fixture(scope="module")
def small_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run `publisher demo --no-serve` once: articles, readers and sent editions."""
    site = tmp_path_factory.mktemp("startup") / "site"
    done = subprocess.run(
        [sys.executable, "-m", "publisher", "demo", "--dir", str(site), "--no-serve"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return site


@pytest.mark.parametrize("args", sorted(NOT_FOR_QUERY))
def test_query_commands_load_only_what_they_query(small_site: Path, args: tuple[str, ...]) -> None:
    modules, shown = loaded_modules(*args, cwd=small_site)
    assert shown.strip(), args
    assert families(modules, NOT_FOR_QUERIES | NOT_FOR_QUERY[args]) == set(), args


def test_pending_migrations_still_run(tmp_path: Path) -> None:
    """The cheap revision check must not hide a database that is behind."""
    url = f"sqlite:///{tmp_path / 'p.db'}"
    db.upgrade(url, "0001_content")
    assert db.current_revision(url) == "0001_content"
    db.ensure_schema(url)
    assert db.current_revision(url) == db.head_revision()


def test_head_read_from_the_files_equals_alembics() -> None:
    assert db.read_heads() == db.alembic_heads()
    assert db.head_revision() == db.alembic_heads()[0]


def test_head_reader_agrees_with_alembic_on_other_layouts(tmp_path: Path) -> None:
    """Annotated assignments, a merge and a branch: the reader matches Alembic or defers."""
    migrations = tmp_path / "migrations"
    shutil.copytree(db.MIGRATIONS_DIR, migrations, ignore=shutil.ignore_patterns("0*.py"))
    versions = migrations / "versions"
    files = {
        "a.py": 'revision = "a"\ndown_revision = None\n',
        "b.py": 'revision: str = "b"\ndown_revision: str | None = "a"  # after a\n',
        "c.py": "revision = 'c'\ndown_revision = 'a'\n",
    }
    for name, text in files.items():
        (versions / name).write_text(
            text + "def upgrade() -> None:\n    pass\n\n\ndef downgrade() -> None:\n    pass\n",
            encoding="utf-8",
        )
    assert db.read_heads(migrations) == sorted(db.alembic_heads(migrations)) == ["b", "c"]
    (versions / "d.py").write_text(
        'revision = "d"\ndown_revision = ("b", "c")\n'
        "def upgrade() -> None:\n    pass\n\n\ndef downgrade() -> None:\n    pass\n",
        encoding="utf-8",
    )
    assert db.read_heads(migrations) == db.alembic_heads(migrations) == ["d"]
    # A revision the reader cannot take literally: it defers to Alembic.
    (versions / "e.py").write_text(
        'REV = "e"\nrevision = REV\ndown_revision = "d"\n'
        "def upgrade() -> None:\n    pass\n\n\ndef downgrade() -> None:\n    pass\n",
        encoding="utf-8",
    )
    assert db.read_heads(migrations) is None
    assert db.alembic_heads(migrations) == ["e"]


def test_current_revision_agrees_with_alembic(tmp_path: Path) -> None:
    from alembic.runtime.migration import MigrationContext

    def alembics(url: str) -> str | None:
        engine = db.create_sync_engine(url)
        try:
            with engine.connect() as connection:
                return MigrationContext.configure(connection).get_current_revision()
        finally:
            engine.dispose()

    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    assert db.current_revision(empty) is None
    assert alembics(empty) is None
    path = init_site(tmp_path / "site")
    url = f"sqlite:///{path.parent / 'publisher.db'}"
    assert db.current_revision(url) == alembics(url) == db.head_revision()
    engine = db.create_sync_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE alembic_version SET version_num = '0003_delivery'"))
    engine.dispose()
    assert db.current_revision(url) == alembics(url) == "0003_delivery"


def test_dummy_password_hash_uses_todays_parameters() -> None:
    """A miss must cost as long as a hit: the literal hash has the hasher's parameters."""
    assert not passwords.needs_rehash(passwords.DUMMY_HASH)
    assert passwords.verify_password(None, "anything at all") is False


def test_help_answers_quickly() -> None:
    """Generous bound (the goal is 0.3 s; this machine is shared): best of five runs."""
    publisher = Path(sys.executable).parent / "publisher"
    argv = [str(publisher)] if publisher.exists() else [sys.executable, "-m", "publisher"]
    best = float("inf")
    for _ in range(5):
        started = time.monotonic()
        subprocess.run([*argv, "--help"], capture_output=True, timeout=60, check=True)
        best = min(best, time.monotonic() - started)
    assert best < 1.5, f"publisher --help took {best:.2f} s at best"


GC_PROBE = """
import gc, sys
import publisher.cli.context as context
real_run = context.run
def report(label):
    state = [gc.isenabled(), gc.get_freeze_count(), *gc.get_threshold()]
    sys.stderr.write(f"\\n{label} {' '.join(map(str, state))}\\n")
def run(site, work):
    report("AT-WORK")
    return real_run(site, work)
context.run = run
from publisher.cli import main
report("AT-START")
try:
    main() if sys.argv[1] != "--as-list" else main(sys.argv[2:])
finally:
    report("AT-EXIT")
"""


def collector_state(*args: str, cwd: Path) -> dict[str, tuple[int, ...]]:
    """Run the CLI through GC_PROBE; return the collector's state (enabled, frozen objects,
    thresholds) before the command, at its work's start and at exit."""
    done = subprocess.run(
        [sys.executable, "-c", GC_PROBE, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=300,
        check=False,
    )
    found = {}
    for line in done.stderr.splitlines():
        if line.startswith(("AT-START ", "AT-WORK ", "AT-EXIT ")):
            label, *values = line.split()
            found[label] = tuple(
                int(value == "True") if value in ("True", "False") else int(value)
                for value in values
            )
    return found


def test_start_up_freezes_the_heap_then_collects_as_usual(small_site: Path, tmp_path: Path) -> None:
    """The process's own command: start-up's objects frozen, usual thresholds for the work."""
    state = collector_state("digest", "status", cwd=small_site)
    enabled, frozen, *usual = state["AT-START"]
    assert enabled
    assert frozen == 0
    enabled, frozen, *thresholds = state["AT-WORK"]
    assert enabled
    assert frozen > 50_000  # modules, classes, SQLAlchemy's tables
    assert thresholds == usual
    # demo opens its site itself: start-up ends when its work starts.
    state = collector_state("demo", "--dir", str(tmp_path / "demo"), "--no-serve", cwd=tmp_path)
    enabled, frozen, *thresholds = state["AT-EXIT"]
    assert enabled
    assert frozen > 50_000
    assert thresholds == usual
    # A command that opens no site still collects (rarely, not never).
    state = collector_state("mailsink", "--help", cwd=tmp_path)
    enabled, frozen, *thresholds = state["AT-EXIT"]
    assert enabled
    assert frozen == 0
    assert thresholds[0] == StartupCollector.STARTING_THRESHOLD
    # main(ARGS), as tests and embedders call it, leaves the collector alone.
    state = collector_state("--as-list", "digest", "status", cwd=small_site)
    assert state["AT-WORK"] == state["AT-START"]


@pytest.mark.postgres
def test_postgres_query_commands_skip_the_blocking_driver(
    postgres_server: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL the schema check goes through asyncpg: psycopg loads only to migrate."""
    if postgres_server is None:
        pytest.skip("PostgreSQL not available (set PUBLISHER_TEST_POSTGRES_URL)")
    from tests.services import fresh_postgres_database

    url = fresh_postgres_database(postgres_server)
    monkeypatch.setenv("PUBLISHER_DATABASE__URL", url)
    site = init_site(tmp_path / "site", title="Kabar", base_url="https://news.example.org")
    modules, shown = loaded_modules("articles", "list", cwd=site.parent)
    assert shown.strip()
    assert families(modules, {"psycopg", "alembic"}) == set()
    assert families(modules, {"asyncpg"}) == {"asyncpg"}


@pytest.mark.postgres
async def test_postgres_revision_read_agrees_with_alembic_inside_a_loop(
    postgres_server: str | None,
) -> None:
    """The check runs from sync code under a running loop (web app, tests) as well."""
    if postgres_server is None:
        pytest.skip("PostgreSQL not available (set PUBLISHER_TEST_POSTGRES_URL)")
    from alembic.runtime.migration import MigrationContext

    from tests.services import fresh_postgres_database

    url = fresh_postgres_database(postgres_server)
    assert db.current_revision(url) is None
    db.upgrade(url, "0003_delivery")
    engine = db.create_sync_engine(url)
    try:
        with engine.connect() as connection:
            alembics = MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()
    assert db.current_revision(url) == alembics == "0003_delivery"
    with pytest.raises(StoreError, match="database postgresql://"):
        db.current_revision(url.rsplit("/", 1)[0] + "/no_such_database")
