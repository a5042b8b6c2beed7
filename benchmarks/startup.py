"""How fast the `publisher` command starts: help, version, and two real commands.

Run: .venv/bin/python benchmarks/startup.py [--repeat 15] [--python PATH]
Prints one line per figure: the median wall time over REPEAT runs, with its goal, and
the median CPU time (user + system), which a loaded machine inflates far less.
Goals: `publisher --help` <= 0.3 s; a command's own work starts within 0.5 s;
`digest status` answers (whole command) in under 1 s.

"To work start" is the time from spawning the process until the command hands its
work to the event loop (cli.context.run), after its imports, the settings and the
schema check: what a user waits for before anything of theirs happens. The commands run
on a small SQLite site made by `publisher demo --no-serve` (sample articles, readers
in three time zones, sent editions). --python runs another checkout's interpreter
(e.g. /work/main/.venv/bin/python) to compare before and after in one run.
--postgres puts the demo site in a fresh PostgreSQL database instead (a throwaway
cluster, or $PUBLISHER_TEST_POSTGRES_URL's server), where the schema check and the
work go through asyncpg.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: Runs one command in a child and prints, on stderr, the wall clock at work start.
WORK_START_PROBE = """
import sys, time
import publisher.cli.context as context
real_run = context.run
def run(site, work):
    sys.stderr.write(f"\\nWORK-START {time.time()!r} {time.process_time()!r}\\n")
    sys.stderr.flush()
    return real_run(site, work)
context.run = run
from publisher.cli import main
main()  # no arguments: the command line, exactly as the `publisher` script runs it
"""


class Run:
    """One run's wall and CPU seconds, whole and up to the work start (when reported)."""

    def __init__(self, argv: list[str], cwd: Path, env: dict[str, str]) -> None:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.time()
        completed = subprocess.run(
            argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
        )
        self.wall = time.time() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        if completed.returncode != 0:
            raise SystemExit(f"{' '.join(argv)}: exit {completed.returncode}: {completed.stderr}")
        marks = [line.split() for line in completed.stderr.splitlines()]
        mark = next((m for m in marks if m and m[0] == "WORK-START"), None)
        self.start_wall = float(mark[1]) - started if mark else None
        self.start_cpu = float(mark[2]) if mark else None


def median_line(label: str, wall: list[float], cpu: list[float], goal: str) -> str:
    """Format one figure: median wall time, its spread, median CPU time and the goal."""
    return (
        f"{label}: median {statistics.median(wall):.3f} s wall (min {min(wall):.3f}, "
        f"max {max(wall):.3f}), {statistics.median(cpu):.3f} s CPU, {len(wall)} runs; "
        f"goal {goal}"
    )


FIGURES = [
    # label, arguments, whole command or time to work start, goal
    ("publisher --help", ["--help"], "whole", "<= 0.3 s"),
    ("publisher --version", ["--version"], "whole", "<= 0.3 s"),
    ("publisher digest --help", ["digest", "--help"], "whole", "<= 0.3 s"),
    ("publisher digest status, to work start", ["digest", "status"], "start", "<= 0.5 s"),
    ("publisher digest status, whole command", ["digest", "status"], "whole", "< 1 s"),
    ("publisher articles list, to work start", ["articles", "list"], "start", "<= 0.5 s"),
    ("publisher articles list, whole command", ["articles", "list"], "whole", "(none)"),
]


@contextmanager
def database(postgres: bool) -> Iterator[str | None]:
    """Yield a fresh PostgreSQL database's URL with --postgres, else None (SQLite)."""
    if not postgres:
        yield None
        return
    sys.path.insert(0, str(ROOT))
    from tests.services import fresh_postgres_database, postgres_url_for_tests

    with postgres_url_for_tests() as server:
        if server is None:
            raise SystemExit("--postgres: no PostgreSQL (initdb) on this machine")
        yield fresh_postgres_database(server)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15, help="Runs per figure.")
    parser.add_argument(
        "--python",
        action="append",
        help="Interpreter whose `publisher` to time (repeatable: compared in one run).",
    )
    parser.add_argument(
        "--postgres", action="store_true", help="Put the demo site in a PostgreSQL database."
    )
    args = parser.parse_args()
    pythons = [Path(p) for p in (args.python or [sys.executable])]
    env = dict(os.environ, COLUMNS="100")
    env.pop("PUBLISHER_CONFIG", None)
    # Users' Python caches compiled modules; without it (PYTHONDONTWRITEBYTECODE, set on
    # some CI machines) every run recompiles Publisher's own modules. The cache goes to
    # the temporary folder, so no checkout is written to.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    # (python, label) -> that figure's runs
    results: dict[tuple[Path, str], list[tuple[float, float]]] = {}
    with (
        database(args.postgres) as url,
        tempfile.TemporaryDirectory(prefix="publisher-startup-") as tmp,
    ):
        if url is not None:
            env["PUBLISHER_DATABASE__URL"] = url
        env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        site = Path(tmp) / "site"
        subprocess.run(
            [str(pythons[0].parent / "publisher"), "demo", "--dir", str(site), "--no-serve"],
            env=env,
            capture_output=True,
            check=True,
            timeout=600,
        )
        # Interleaved, so a burst of load on the shared machine touches every figure alike.
        for _ in range(args.repeat):
            for python in pythons:
                publisher = str(python.parent / "publisher")
                for arguments in dict.fromkeys(tuple(f[1]) for f in FIGURES):
                    # The probe runs real commands (it marks their work start); help and
                    # version run through the installed `publisher` script, as users do.
                    probe = arguments[-1] != "--help" and arguments != ("--version",)
                    argv = (
                        [str(python), "-c", WORK_START_PROBE, *arguments]
                        if probe
                        else [publisher, *arguments]
                    )
                    run = Run(argv, site, env)
                    for label, figure_args, kind, _goal in FIGURES:
                        if tuple(figure_args) != arguments:
                            continue
                        if kind == "whole":
                            results.setdefault((python, label), []).append((run.wall, run.cpu))
                        elif run.start_wall is not None and run.start_cpu is not None:
                            value = (run.start_wall, run.start_cpu)
                            results.setdefault((python, label), []).append(value)
    for python in pythons:
        backend = "PostgreSQL" if args.postgres else "SQLite"
        print(f"# {python} ({args.repeat} runs each, interleaved, {backend} site)")
        for label, _arguments, _kind, goal in FIGURES:
            runs = results[(python, label)]
            print(median_line(label, [r[0] for r in runs], [r[1] for r in runs], goal))


if __name__ == "__main__":
    main()
