"""The report of an imports run, rendered while the run goes on.

An imports run ends with the rows of its last imports read back and reconciled, and then the
report: results.csv for every row of the run. At 100,000 rows that last step alone took 1.5 s,
after the server's last row. But by then almost every row has had its final outcome for a while:
the rows of the imports that ended earlier. So a thread renders the run's rows, in input order,
as far as they are settled, into unlinked temporary files (a run killed meanwhile leaves nothing
behind); the report at the end renders only the rows after them and copies the rest.

A row is rendered once its outcome is final, and in a fresh imports run an outcome is final once
written: every row is settled once (rows an interrupted import did not create stay open until
they are sent again). A resumed run retries the rows an earlier run failed, so it renders
nothing ahead, and neither does a run that wants results.xlsx (written in one pass). The thread
starts rendering once the whole input is read: while it is read, the process is busy checking
rows and posting imports, and the thread would only slow that down.
"""

from __future__ import annotations

import contextlib
import tempfile
import threading
from pathlib import Path

import structlog

from importer.journal import Journal
from importer.report import RESULTS_ENCODING, Rendering

log = structlog.get_logger("importer")

EVERY_S = 0.5  # how often the thread looks for newly settled rows
MIN_ROWS = 500  # fewer newly settled rows than this wait for the next look (or the end)


class ReportAhead:
    """Renders a run's settled rows on a thread; `take()` stops it and hands the rendering to
    write_reports."""

    def __init__(self, journal_path: str, run_id: str, report_dir: Path) -> None:
        self._path = journal_path
        self._run_id = run_id
        self._dir = Path(report_dir)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._rendering: Rendering | None = None
        self._files = contextlib.ExitStack()  # the two temporary files, closed by close()
        self._failed = False

    def start(self) -> None:
        # They outlive this call: close() closes them, after write_reports has copied them.
        temporary = tempfile.TemporaryFile
        try:
            self._dir.mkdir(parents=True, exist_ok=True)
            results = self._files.enter_context(
                temporary("w+", encoding=RESULTS_ENCODING, newline="", dir=self._dir)
            )
            spool = self._files.enter_context(temporary("w+", encoding="utf-8", dir=self._dir))
        except OSError as exc:  # the run goes on; the report at the end renders every row
            log.warning("report.ahead_failed", error=f"{type(exc).__name__}: {exc}")
            return
        self._rendering = Rendering(results, spool)
        self._thread = threading.Thread(target=self._run, name="importer-report-ahead", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        rendering = self._rendering
        assert rendering is not None
        journal: Journal | None = None
        try:
            journal = Journal.reader(self._path)
            while not self._stop.wait(EVERY_S):
                if not journal.intake_done(self._run_id):
                    continue
                upto = journal.settled_through(self._run_id, rendering.last_seq)
                if upto - rendering.last_seq < MIN_ROWS:
                    continue
                rendering.add(
                    journal.iter_rows(self._run_id, after=rendering.last_seq, upto=upto),
                    stop=self._stop.is_set,
                )
        except Exception as exc:  # the report at the end renders every row instead
            self._failed = True
            log.warning("report.ahead_failed", error=f"{type(exc).__name__}: {exc}")
        finally:
            if journal is not None:
                journal.close()

    @property
    def rows_rendered(self) -> int:
        return self._rendering.rows if self._rendering is not None else 0

    def take(self) -> Rendering | None:
        """Stop the thread (it ends after the row it is on) and return what it rendered; None
        if it never started or failed."""
        if self._thread is None:
            return None
        self._stop.set()
        self._thread.join()
        if self._failed or self._rendering is None:
            return None
        log.debug("report.rendered_ahead", rows=self._rendering.rows)
        return self._rendering

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._files.close()
