"""Ctrl-C through the real command line, then a resumed run: every row once, nothing twice."""

from __future__ import annotations

import csv
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from run_helpers import SandboxProcess, sandbox_process

from importer.sandbox.sample import write_sample
from importer.sandbox.settings import DEMO_SEED

ROWS = 100


def _config(sb: SandboxProcess, tmp_path: Path) -> Path:
    config = tmp_path / "config.yaml"
    config.write_text(
        "\n".join(
            [
                "commercelayer:",
                f"  base_url: {sb.base_url}",
                f"  auth_url: {sb.auth_url}",
                f"  client_id: {sb.client_id}",
                f"  client_secret: {sb.client_secret}",
                "rate_limit:",
                f"  burst: {sb.settings.burst_limit}",
                f"  burst_window_s: {sb.settings.burst_window}",
                f"  average: {sb.settings.average_limit}",
                f"  average_window_s: {sb.settings.average_window}",
                "  safety_margin_s: 0.05",
                "timeouts:",
                "  shutdown_grace_s: 3",
                "journal:",
                f"  path: {tmp_path / 'journal.sqlite'}",
                "",
            ]
        ),
        encoding="utf-8",
    )
    os.chmod(config, 0o600)
    return config


def _cli(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CL_")}
    return subprocess.Popen(
        [sys.executable, "-m", "importer", *args],
        cwd=cwd,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _dump(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        return "\n".join(conn.iterdump())
    finally:
        conn.close()


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8-sig") as fh:
        return list(csv.DictReader(fh))


def test_sigint_mid_run_then_resume(tmp_path: Path) -> None:
    info = write_sample(tmp_path / "in.csv", DEMO_SEED, 20, rows=ROWS)
    with sandbox_process(
        "--time-scale",
        "0.025",
        "--set",
        "average_window_s=40",
        "--set",
        "burst_limit=10",
        "--set",
        "average_limit=40",
        "--customers",
        str(info.customers),
    ) as sb:
        config = _config(sb, tmp_path)
        args = ["run", str(tmp_path / "in.csv"), "-c", str(config), "--log-format", "json", "-vv"]  # debug
        proc = _cli([*args, "--report-dir", str(tmp_path / "r1")], tmp_path)
        try:
            for _ in range(600):  # up to 30 s for the first rows to land
                if sb.created() >= 10 or proc.poll() is not None:
                    break
                time.sleep(0.05)
            # Then a 429 storm holds every further create, so the SIGINT lands mid-run by state,
            # not by how fast this machine happens to be: at least 10 rows in, the rest still
            # waiting. (A POST already past the storm check may still land; it is counted below.)
            sb.set_faults(storm_s=600)
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert proc.returncode == 130, err[-2000:]
        rows = _rows(tmp_path / "r1" / "results.csv")
        assert len(rows) == ROWS
        assert len({r["row_number"] for r in rows}) == ROWS  # every row exactly once
        counts = {s: sum(1 for r in rows if r["status"] == s) for s in {r["status"] for r in rows}}
        assert set(counts) == {"created", "not_attempted"}, counts
        assert 10 <= counts["created"] < ROWS
        assert sb.created() == counts["created"]
        assert '"event": "api.answer"' in err  # the debug log was on
        # Nothing secret reached the log (at debug level), the report or the journal.
        texts = [
            out,
            err,
            (tmp_path / "r1" / "results.csv").read_text(encoding="utf-8-sig"),
            _dump(tmp_path / "journal.sqlite"),
        ]
        for text in texts:
            assert sb.client_secret not in text
            assert "Bearer" not in text
            # The sandbox's tokens are 64 base64url characters; the only long words allowed are
            # hex digests (file and config fingerprints).
            long_words = re.findall(r"[A-Za-z0-9_-]{60,}", text)
            assert all(re.fullmatch(r"[0-9a-f]+", w) for w in long_words), long_words

        # Run again: the interrupted run is resumed and finishes, creating only what is missing.
        sb.set_faults(storm_s=0)  # the storm ends now
        sb.reset_windows()  # and the first run's requests do not delay the second
        second = _cli([*args, "--report-dir", str(tmp_path / "r2")], tmp_path)
        _, err2 = second.communicate(timeout=60)
        assert second.returncode == 0, err2[-2000:]
        rows = _rows(tmp_path / "r2" / "results.csv")
        assert len(rows) == ROWS and {r["status"] for r in rows} == {"created"}
        stats = sb.stats()
        assert stats["records"]["customer_payment_sources"] == ROWS
        assert stats["duplicates"]["count"] == 0
