"""End to end over real HTTP: what the loader reads is what the run sends (issue 9)."""

from __future__ import annotations

import csv
from pathlib import Path

from run_helpers import created_count, results, run_import, sandbox_thread, settings_for, statuses

from importer.pipeline import RunOptions, execute
from importer.runid import new_run_id
from importer.sandbox.sample import write_sample
from importer.sandbox.settings import DEMO_SEED


def _with_invisible_characters(path: Path) -> None:
    """Every e-mail and id gets a zero-width space, a soft hyphen, a BOM or a joiner, as
    copy-paste from a web page or a mail client brings them along."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    marks = ["\u200b", "\u00ad", "\ufeff", "\u200d"]
    for n, row in enumerate(rows[1:]):
        mark = marks[n % len(marks)]
        for column in (0, 1, 3):  # customer_id, customer_email, payment_source_id
            if row[column]:
                row[column] = row[column][:3] + mark + row[column][3:]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(rows)


def test_invisible_characters_do_not_make_validate_and_run_disagree(tmp_path: Path) -> None:
    info = write_sample(tmp_path / "in.csv", DEMO_SEED, 20, rows=12)
    _with_invisible_characters(tmp_path / "in.csv")
    with sandbox_thread(customers=info.customers, burst_limit=1000, average_limit=10000) as sb:
        settings = settings_for(sb, tmp_path)
        checked = execute(
            settings,
            RunOptions(
                command="validate",
                inputs=(str(tmp_path / "in.csv"),),
                run_id=new_run_id(),
                report_dir=tmp_path / "validate",
            ),
        )
        assert checked.exit_code == 0
        assert statuses(tmp_path / "validate") == {"valid": 12}
        out = run_import(settings, [tmp_path / "in.csv"], tmp_path / "rep")
        assert out.exit_code == 0
        assert statuses(tmp_path / "rep") == {"created": 12}  # no CUSTOMER_NOT_FOUND
        assert created_count(sb) == 12
        rows = results(tmp_path / "rep")
        emails = [r["customer_email"] for r in rows if r["customer_email"]]
        assert len(emails) == 6 and all(e.isascii() for e in emails)
        assert all(r["payment_source_id"].isascii() and len(r["payment_source_id"]) == 10 for r in rows)
