"""The client secret and the access tokens never leave the process: not in the log (JSON and
console, at debug level), not in any report file, not in the journal, not in an error message.

A full import runs with faults and a token expiry (so more than one token is issued); every token
the sandbox issues is captured at the source and checked against everything the runs wrote. The
sandbox keeps only the tokens' SHA-256 in its state file: any long word in any output whose
digest is there would be a leaked token, even one the capture missed.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import (
    CPS,
    api_of,
    cli,
    dump_sqlite,
    fire_when,
    rate_limit_for,
    results,
    run_argv,
    status_counts,
    write_config,
)

from importer.auth import AccessToken
from importer.config import load_settings
from importer.sandbox.sample import write_sample
from importer.sandbox.settings import DEMO_SEED
from importer.sandbox.testing import SandboxThread, fast_settings

ROWS = 60
LONG_WORD = re.compile(r"[A-Za-z0-9_\-.]{32,}")  # with dots: a JWT-shaped token is one word


def _texts_of(folder: Path) -> dict[str, str]:
    return {
        str(p): p.read_bytes().decode("utf-8", errors="replace")
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_secret_and_tokens_never_reach_logs_reports_journal_or_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "cs-" + secrets.token_hex(20)
    info = write_sample(tmp_path / "in.csv", DEMO_SEED, 20, rows=ROWS)
    state = tmp_path / "sandbox-state.sqlite"
    settings = fast_settings(
        customers=info.customers,
        client_secret=secret,
        state_path=str(state),
        error_5xx=0.1,
        error_5xx_scope="api",
        commit_then_fail=0.1,
        commit_then_fail_mode="mixed",
        connection_reset=0.05,
        fault_seed=5,
    )
    outputs: dict[str, str] = {}
    with SandboxThread(settings) as sb:
        issued: list[str] = []
        issue: Callable[..., tuple[str, float]] = sb.store.issue_token

        def capture(ttl_s: float, claims: dict[str, Any] | None = None) -> tuple[str, float]:
            token, created = issue(ttl_s, claims)
            issued.append(token)
            return token, created

        sb.store.issue_token = capture  # type: ignore[method-assign]
        monkeypatch.setenv("CL_CLIENT_SECRET", secret)
        rate = rate_limit_for(0.05, 25, 100) | {"safety_margin_s": 0.15}
        retry = {"max_attempts": 15, "base_delay_s": 0.02, "max_delay_s": 0.2}
        # The secret from the environment, as the docs say.
        env_config = write_config(
            tmp_path / "env.yaml", api_of(sb), tmp_path / "j1.sqlite", rate_limit=rate, retry=retry
        )
        text = env_config.read_text().replace(secret, "${CL_CLIENT_SECRET}")
        env_config.write_text(text)
        assert secret not in text

        # 1. A full import, JSON log at debug level, faults on, every token expired mid-run.
        with fire_when(lambda: len(sb.store.tables[CPS]) >= 15, sb.expire_tokens) as expired:
            first = cli([*run_argv([tmp_path / "in.csv"], env_config, tmp_path / "r1"), "-vv"])
        assert expired.is_set()
        assert first.code == 0, first.err[-3000:]
        assert status_counts(results(tmp_path / "r1")) == {"created": ROWS}
        outputs["run 1 stdout"], outputs["run 1 stderr"] = first.out, first.err

        # 2. A rerun from a fresh journal, console log at debug level, xlsx report too, the secret
        # written literally in a config file others can read (the warning must not quote it).
        literal = write_config(
            tmp_path / "literal.yaml",
            api_of(sb),
            tmp_path / "j2.sqlite",
            mode=0o644,
            rate_limit=rate,
            retry=retry,
            report={"formats": ["csv", "xlsx"]},
        )
        monkeypatch.delenv("CL_CLIENT_SECRET")
        second = cli(
            [
                "run",
                str(tmp_path / "in.csv"),
                "-c",
                str(literal),
                "--report-dir",
                str(tmp_path / "r2"),
                "--log-format",
                "console",
                "-vv",
            ]
        )
        assert second.code == 0, second.err[-3000:]
        assert "config.warning" in second.err
        outputs["run 2 stdout"], outputs["run 2 stderr"] = second.out, second.err

        # 3. The report rebuilt from the journal, in both log formats.
        for fmt in ("json", "console"):
            rebuilt = cli(
                [
                    "report",
                    "--journal",
                    str(tmp_path / "j1.sqlite"),
                    "-c",
                    str(literal),
                    "--report-dir",
                    str(tmp_path / f"rebuilt-{fmt}"),
                    "--log-format",
                    fmt,
                    "-vv",
                ]
            )
            assert rebuilt.code == 0, rebuilt.err
            outputs[f"report {fmt}"] = rebuilt.out + rebuilt.err

        # 4. Error paths: a wrong secret (which contains the right one), and a token endpoint
        # that answers with an API error body.
        monkeypatch.setenv("CL_CLIENT_SECRET", secret + "-wrong")
        wrong = cli([*run_argv([tmp_path / "in.csv"], env_config, tmp_path / "r4"), "-vv"])
        assert wrong.code == 3 and "Traceback" not in wrong.err
        outputs["wrong secret"] = wrong.out + wrong.err
        monkeypatch.setenv("CL_CLIENT_SECRET", secret)
        bad_auth = write_config(
            tmp_path / "bad-auth.yaml",
            api_of(sb),
            tmp_path / "j5.sqlite",
            rate_limit=rate,
            # An API route whose path looks like a token endpoint: it answers with an API error.
            commercelayer={"auth_url": f"{sb.base_url}/api/oauth/token"},
        )
        odd = cli([*run_argv([tmp_path / "in.csv"], bad_auth, tmp_path / "r5"), "-vv"])
        assert odd.code == 3 and "authentication failed" in odd.err
        outputs["odd token endpoint"] = odd.out + odd.err

        stats = sb.stats()
    assert stats["duplicates"]["count"] == 0
    assert stats["faults"].get("error_5xx", 0) > 0 and stats["faults"].get("commit_then_fail", 0) > 0

    # Every token the sandbox issued was captured: its state file holds exactly their digests.
    conn = sqlite3.connect(f"file:{state}?mode=ro", uri=True)
    try:
        digests = {d for (d,) in conn.execute("SELECT digest FROM tokens")}
    finally:
        conn.close()
    assert len(issued) == stats["tokens_issued"] >= 3  # two in run 1 (expiry), one in run 2
    assert {hashlib.sha256(t.encode()).hexdigest() for t in issued} == digests

    # Everything the runs wrote.
    for folder in ("r1", "r2", "r4", "r5", "rebuilt-json", "rebuilt-console"):
        outputs.update(_texts_of(tmp_path / folder))
    assert any(name.endswith("results.xlsx") for name in outputs)
    for journal in ("j1.sqlite", "j2.sqlite", "j5.sqlite"):
        if (tmp_path / journal).exists():
            outputs[journal] = dump_sqlite(tmp_path / journal)
    assert "j1.sqlite" in outputs and "j2.sqlite" in outputs
    # Decompressed workbook parts too (an .xlsx is a zip: a raw grep would miss its cells).
    import zipfile

    with zipfile.ZipFile(tmp_path / "r2" / "results.xlsx") as book:
        for name in book.namelist():
            outputs[f"results.xlsx:{name}"] = book.read(name).decode("utf-8", errors="replace")

    leaks = []
    for where, text in outputs.items():
        if secret in text:
            leaks.append(f"client secret in {where}")
        leaks.extend(f"access token #{i + 1} in {where}" for i, token in enumerate(issued) if token in text)
        leaks.extend(
            f"a token-like word whose digest the sandbox issued, in {where}"
            for word in LONG_WORD.findall(text)
            if hashlib.sha256(word.encode()).hexdigest() in digests
        )
        if re.search(r"Bearer\s+(?!\*\*\*)[A-Za-z0-9\-._~+/]{8,}", text):
            leaks.append(f"a bearer credential in {where}")
    assert not leaks, leaks
    print(f"\nsecrets: checked {len(outputs)} outputs against the client secret and {len(issued)} tokens")


def test_settings_and_tokens_hide_themselves_in_repr_and_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "cs-" + secrets.token_hex(20)
    config = tmp_path / "c.yaml"
    config.write_text(
        f"commercelayer:\n  base_url: http://127.0.0.1:9\n  client_id: id\n  client_secret: {secret}\n"
    )
    os.chmod(config, 0o600)
    settings, warnings = load_settings(config, env={})
    shown = [
        repr(settings),
        str(settings),
        settings.model_dump_json(),
        str(settings.public_dict()),
        *warnings,
        settings.fingerprint(),
    ]
    assert not [s for s in shown if secret in s]
    token = AccessToken("tok-" + secrets.token_hex(24), renew_at=1.0)
    assert token.value not in repr(token) and token.value not in str(token)
    # Config errors name the key, never the secret's value, even when the secret itself is bad.
    for body in (
        f"  client_secret: {secret}\nconcurrency: 0\n",
        f"  client_secret: [{secret}]\n",
        f"  client_secret: {secret}\n  bogus_key: 1\n",
    ):
        bad = tmp_path / "bad.yaml"
        bad.write_text("commercelayer:\n  base_url: http://127.0.0.1:9\n" + body)
        os.chmod(bad, 0o600)
        out = cli(["validate", str(tmp_path / "in.csv"), "-c", str(bad), "--log-format", "json", "-vv"])
        assert out.code == 2 and "config key" in out.err, out.err
        assert secret not in out.err + out.out
