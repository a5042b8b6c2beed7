"""One contender in the lock race of tests/test_locks.py (run as `python -m tests.lock_racer`).

Takes a lock ITERATIONS times and, while holding it, claims a marker file with
O_CREAT|O_EXCL: a second holder at the same moment finds the marker and reports a
violation. Between attempts it sleeps a random moment so that takes and releases
interleave in every order. Prints one JSON line: acquisitions, busy refusals, violations.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import json
import os
import random
import sys
import time
from pathlib import Path

from publisher.db import create_engine
from publisher.errors import LockBusy
from publisher.locks import AdvisoryLock, FileLock


class UnlinkBeforeUnlock:
    """The send lock as it was before publisher/locks.py: it deleted its file, then unlocked.

    Kept to show the race test catches the bug it guards against.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.description = f"lock file {path}"
        self._handle = path.open("a+b")
        try:
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._handle.close()
            raise LockBusy(self.description, "another process") from None

    async def verify(self) -> None:
        """Check nothing (the old lock did not)."""

    async def release(self) -> None:
        """Delete the file, then unlock it: the race."""
        self.path.unlink(missing_ok=True)
        fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
        self._handle.close()


async def race(args: argparse.Namespace) -> dict[str, int]:
    """Take and release the lock until acquired ``iterations`` times."""
    rng = random.Random(args.seed)
    engine = create_engine(args.target) if args.kind == "advisory" else None
    counts = {"acquired": 0, "busy": 0, "violations": 0}
    marker = Path(args.marker)
    # Everyone starts together, after their imports: a barrier of one file per racer.
    Path(f"{args.go}.{os.getpid()}").touch()
    while len(list(Path(args.go).parent.glob(Path(args.go).name + ".*"))) < args.racers:
        time.sleep(0.001)
    try:
        while counts["acquired"] < args.iterations:
            lock: FileLock | AdvisoryLock | UnlinkBeforeUnlock
            try:
                if engine is not None:
                    lock = await AdvisoryLock.take(engine, args.key)
                elif args.kind == "unlink-before-unlock":
                    lock = UnlinkBeforeUnlock(Path(args.target))
                else:
                    lock = FileLock.take(Path(args.target), f"pid {os.getpid()}")
            except LockBusy:
                counts["busy"] += 1
                await asyncio.sleep(rng.random() * 0.0005)
                continue
            try:
                fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                counts["violations"] += 1
            else:
                os.close(fd)
                if rng.random() < 0.5:
                    await asyncio.sleep(rng.random() * 0.001)
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(marker)
            counts["acquired"] += 1
            await lock.release()
            if rng.random() < 0.5:
                await asyncio.sleep(rng.random() * 0.0005)
    finally:
        if engine is not None:
            await engine.dispose()
    return counts


def main() -> None:
    """Parse the arguments, race, print the counts."""
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=["file", "advisory", "unlink-before-unlock"])
    parser.add_argument("target", help="lock file path, or database URL for advisory")
    parser.add_argument("--marker", required=True)
    parser.add_argument("--go", required=True)
    parser.add_argument("--racers", type=int, required=True)
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--key", type=int, default=0x7075_6274)
    args = parser.parse_args()
    counts = asyncio.run(race(args))
    sys.stdout.write(json.dumps(counts) + "\n")


if __name__ == "__main__":
    main()
