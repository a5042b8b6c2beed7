"""CSV import and export: streaming, idempotent, line-numbered errors, suppression kept."""

from __future__ import annotations

import csv
import io
import re
import subprocess
import sys
from pathlib import Path

import pytest

from publisher.db import transaction
from publisher.site import Site
from subscribers import consent, csvio, repository, suppression
from subscribers.errors import InvalidInput
from subscribers.models import ACTIVE, PENDING, UNSUBSCRIBED

GOOD = """email,name,language,timezone,frequency,topics
siti@example.org,Siti Aminah,id,Asia/Makassar,daily,ekonomi;Olah Raga
John@Example.ORG,John,en,,weekly,
budi@bücher.de,"Budi, S.",,Asia/Jayapura,,
"""


async def run_import(
    site: Site, text: str, *, confirmed: bool = False, batch: int = 1000
) -> csvio.ImportReport:
    return await csvio.import_csv(
        site.engine,
        io.StringIO(text),
        site.clock.now(),
        source="t.csv",
        confirmed=confirmed,
        batch_size=batch,
    )


async def test_import_is_idempotent(site: Site) -> None:
    first = await run_import(site, GOOD, confirmed=True)
    assert (first.created, first.updated, first.unchanged, first.errors) == (3, 0, 0, [])
    second = await run_import(site, GOOD, confirmed=True)
    assert (second.created, second.updated, second.unchanged) == (0, 0, 3)
    async with transaction(site.engine) as session:
        siti = await repository.get_by_email(session, "SITI@example.org")
        assert siti is not None
        assert siti.status == ACTIVE
        assert siti.consent_source == "import"
        assert siti.topics == ["ekonomi", "olah-raga"]
        assert siti.timezone == "Asia/Makassar"
        john = await repository.get_by_email(session, "john@example.org")
        assert john is not None
        assert (john.email, john.frequency, john.language) == ("John@example.org", "weekly", "en")
    changed = await run_import(site, GOOD.replace("Siti Aminah", "Siti A."), confirmed=True)
    assert (changed.updated, changed.unchanged) == (1, 2)


async def test_bad_rows_are_reported_with_line_numbers_and_do_not_abort(site: Site) -> None:
    text = (
        "email,name,language,timezone,frequency,topics\n"
        "ok1@example.org,,,,,\n"
        "not-an-address,,,,,\n"
        "ok2@example.org,,,Mars/Base,,\n"
        '"multi\nline"@example.org,,,,,\n'
        "ok3@example.org,,fr,,,\n"
        "ok4@example.org,,,,hourly,\n"
        "ok5@example.org,too,many,fields,,,,\n"
        "ok6@example.org,,,,,\n"
    )
    report = await run_import(site, text, batch=2)
    assert report.created == 2
    lines = [(e.line, e.message.split(":")[0]) for e in report.errors]
    assert [line for line, _ in lines] == [3, 4, 5, 7, 8, 9]
    assert "not-an-address" in str(report.errors[0])
    assert "Mars/Base" in str(report.errors[1])


async def test_import_never_reactivates_a_suppressed_address(site: Site) -> None:
    await run_import(site, GOOD, confirmed=True)
    async with transaction(site.engine) as session:
        siti = await repository.get_by_email(session, "siti@example.org")
        assert siti is not None
        await consent.unsubscribe(session, siti, site.clock.now())
    again = await run_import(site, GOOD, confirmed=True)
    assert again.created == 0
    async with transaction(site.engine) as session:
        siti = await repository.get_by_email(session, "siti@example.org")
        assert siti is not None
        assert siti.status == UNSUBSCRIBED
        await repository.remove(session, "siti@example.org")
    after_delete = await run_import(site, GOOD, confirmed=True)
    assert (after_delete.created, after_delete.suppressed) == (0, 1)
    async with transaction(site.engine) as session:
        assert await repository.get_by_email(session, "siti@example.org") is None
        assert await suppression.is_suppressed(session, "siti@example.org")


async def test_unconfirmed_import_is_pending_and_confirmed_reimport_activates(site: Site) -> None:
    report = await run_import(site, GOOD)
    assert report.created == 3
    async with transaction(site.engine) as session:
        counts = await repository.count_by_status(session)
        assert counts == {PENDING: 3}
    report = await run_import(site, GOOD, confirmed=True)
    assert report.updated == 3


@pytest.mark.parametrize(
    "text",
    ["", "name,language\nx,y\n", "email,nickname\na@example.org,x\n"],
)
async def test_bad_headers_fail_before_anything_is_written(site: Site, text: str) -> None:
    with pytest.raises(InvalidInput, match=r"t\.csv"):
        await run_import(site, text)


async def test_export_round_trips_and_neutralizes_formulas(site: Site) -> None:
    hostile = GOOD + '=HYPERLINK("http://evil.example"),=cmd|calc,,,,\n'
    hostile += 'hostile@example.org,"=HYPERLINK(""http://evil.example"")",,,,\n'
    report = await run_import(site, hostile, confirmed=True)
    assert report.created == 4
    assert len(report.errors) == 1
    out = io.StringIO()
    async with transaction(site.engine) as session:
        assert await csvio.export_csv(session, out) == 4
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert list(rows[0]) == list(csvio.EXPORT_COLUMNS)
    by_email = {row["email"]: row for row in rows}
    assert by_email["hostile@example.org"]["name"].startswith("'=")
    assert by_email["siti@example.org"]["consent_source"] == "import"
    assert by_email["siti@example.org"]["consent_at"].startswith("2026-11-25")
    assert by_email["siti@example.org"]["topics"] == "ekonomi;olah-raga"
    # Importing the export changes nothing (the leading quote is taken off again).
    again = await run_import(site, out.getvalue(), confirmed=True)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 4)


def test_benchmark_script_runs_small() -> None:
    script = Path(__file__).resolve().parent.parent / "benchmarks" / "subscribers.py"
    result = subprocess.run(
        [sys.executable, str(script), "--rows", "500", "--repeat", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert re.match(
        r"^subscribers import: 500 rows in \d+\.\d\d s \(.*494 created, 6 bad", lines[0]
    )
    assert "0 created, 0 updated, 494 unchanged" in lines[1]
    assert lines[2].startswith("subscribers export: 494 rows")
