"""Back-to-back runs share the IP's rate windows: the second run, a new process, starts with the
send stamps the first left in the journal and gets no 429 (real processes, scaled windows; the
assertions are counts of 429 answers, never seconds)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from e2e_helpers import (
    SandboxProcess,
    api_of,
    importer_proc,
    journal_query,
    rate_limit_for,
    results,
    run_argv,
    status_counts,
    summary,
    words,
    write_config,
)

from importer.sandbox.seed import generate
from importer.sandbox.settings import DEMO_SEED

# The first run sends more requests than the average window allows (100), so it ends with the
# server's window full; the second needs only enough rows for a burst into it.
FIRST, SECOND = 120, 60
CONCURRENCY = 4
SCALE = 0.2  # windows of 2 s and 12 s: a process start-up (~1 s, not scaled) must not outlast them


def write_halves(tmp_path: Path, first: int, second: int) -> tuple[Path, Path, int]:
    """Two CSVs of different pairings (so both runs send): the first `first`, then `second` more."""
    data = generate(DEMO_SEED, 20, min_sources=first + second)
    paths = []
    for name, part in (("a.csv", data.sources[:first]), ("b.csv", data.sources[first : first + second])):
        with open(tmp_path / name, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["customer_id", "payment_source_type", "payment_source_id"])
            writer.writerows([s.customer_id, s.type, s.id] for s in part)
        paths.append(tmp_path / name)
    return paths[0], paths[1], len(data.customers)


def back_to_back(
    tmp_path: Path,
    first_rows: int = FIRST,
    second_rows: int = SECOND,
    scale: float = SCALE,
    *,
    second_journal: str = "journal.sqlite",
) -> tuple[dict[str, int], dict[str, int]]:
    """Two `importer run` processes, one after the other, on one sandbox; the second on the same
    journal unless `second_journal` names another one. Returns (summary of run 2, 429s the
    sandbox answered during run 2)."""
    first, second, customers = write_halves(tmp_path, first_rows, second_rows)
    args = [*words(f"--time-scale {scale} --customers"), str(customers)]
    with SandboxProcess(*args) as sb:
        config = write_config(
            tmp_path / "config.yaml",
            api_of(sb),
            tmp_path / "journal.sqlite",
            concurrency=CONCURRENCY,
            # The default margin: a new process's first burst opens new connections, and the
            # sandbox process on 2 busy cores can take longer than 0.05 s to stamp an arrival.
            rate_limit=rate_limit_for(scale, 25, 100) | {"safety_margin_s": 0.25},
        )
        with importer_proc(run_argv([first], config, tmp_path / "rep1"), tmp_path, "first") as p1:
            assert p1.wait(180) == 0, p1.err[-2000:]
        before = len(sb.requests_log())
        if second_journal != "journal.sqlite":
            config = write_config(
                tmp_path / "config2.yaml",
                api_of(sb),
                tmp_path / second_journal,
                concurrency=CONCURRENCY,
                rate_limit=rate_limit_for(scale, 25, 100) | {"safety_margin_s": 0.25},
            )
        with importer_proc(run_argv([second], config, tmp_path / "rep2"), tmp_path, "second") as p2:
            assert p2.wait(180) == 0, p2.err[-2000:]
        log = sb.requests_log()[before:]
        assert sb.stats()["duplicates"]["count"] == 0
    api = [e for e in log if e["path"].startswith("/api")]
    refused = [i for i, e in enumerate(api) if e["status"] == 429]
    s = summary(tmp_path / "rep2")
    assert status_counts(results(tmp_path / "rep2")) == {"created": second_rows}
    # "late": after the first CONCURRENCY requests, i.e. once an answer could have informed the run.
    return {"rate_limited": s["rate_limited"], "requests": s["requests"]}, {
        "429": len(refused),
        "429_late": sum(1 for i in refused if i >= CONCURRENCY),
    }


@pytest.mark.slow
def test_a_run_right_after_another_gets_no_429(tmp_path: Path) -> None:
    second, sandbox_saw = back_to_back(tmp_path)
    assert second["rate_limited"] == 0 and sandbox_saw == {"429": 0, "429_late": 0}, (second, sandbox_saw)
    # The journal keeps only what the windows can still hold: about one average window of stamps.
    stamps = journal_query(tmp_path / "journal.sqlite", "SELECT COUNT(*) FROM send_stamps")
    assert stamps is not None and 0 < stamps[0][0] <= 2 * 100 + 20


@pytest.mark.slow
def test_a_run_on_another_journal_reads_the_servers_count_and_gets_no_429(tmp_path: Path) -> None:
    """No stamps to start from: the first answer's X-Ratelimit-Remaining shows the other run's
    requests, and they are counted before the windows let the rest go. Only the requests that
    left before any answer came back can meet a 429 (measured: 0 or 1); the steady state has none."""
    second, sandbox_saw = back_to_back(tmp_path, second_journal="other.sqlite")
    assert sandbox_saw["429_late"] == 0, (second, sandbox_saw)
    assert second["rate_limited"] == sandbox_saw["429"] <= CONCURRENCY, (second, sandbox_saw)
    other = journal_query(tmp_path / "other.sqlite", "SELECT COUNT(*) FROM send_stamps")
    assert other is not None and other[0][0] > 0
